"""The SENSE student: a speech encoder plus the embedding head.

One ``nn.Module`` so that DDP wraps (and synchronises gradients of) the
encoder and the head through a single ``forward`` call.

Authors
 * speechbrain-sense developers 2026
"""

from torch import nn


class SenseStudent(nn.Module):
    """Speech encoder + length-masked attentive pooling head.

    Arguments
    ---------
    encoder : nn.Module
        A frame encoder with ``forward_features(features, frame_counts)``
        returning ``[B, T', D]`` (``SenseW2VBert``; or ``SenseXLSR``, whose
        ``output_frame_counts`` maps input samples to frames).
    head : nn.Module
        ``SenseEmbeddingHead`` mapping frames and counts to ``[B, D']``.

    Example
    -------
    >>> import tempfile, torch
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> student(torch.randn(2, 9, 160), torch.tensor([9, 5])).shape
    torch.Size([2, 16])
    """

    def __init__(self, encoder, head):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, features, frame_counts):
        """L2-normalised utterance embeddings.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, F]`` padded input features.
        frame_counts : torch.Tensor
            ``[B]`` real input frames (samples, for XLS-R) per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, D']`` float32 embeddings.
        """
        # [B, T, F] -> [B, T', D]
        frames = self.encoder.forward_features(features, frame_counts)
        if hasattr(self.encoder, "output_frame_counts"):
            # XLS-R subsamples its input samples (320 per frame); w2v-BERT's
            # features are already frames.
            frame_counts = self.encoder.output_frame_counts(frame_counts)
        # [B, T', D] -> [B, D']
        return self.head(frames, frame_counts)
