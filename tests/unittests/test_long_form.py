"""Window-by-window encoding of long recordings."""

import pytest
import torch
from torch import nn

from speechbrain_sense.encoders.long_form import (
    LongFormEncoder,
    average_pool_frames,
    input_span,
    long_form_windows,
    num_long_form_windows,
    output_frame_count,
    seconds_to_frames,
)
from speechbrain_sense.tasks.downstream import LengthAdaptor, SenseFrameEncoder


class LinearFrameEncoder(nn.Module):
    """A position-independent frame encoder with SenseFrameEncoder's call."""

    def __init__(self, input_dim=6, output_dim=5):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)
        self.calls = []

    def forward(self, features, frame_counts):
        self.calls.append(tuple(features.shape))
        mask = torch.arange(features.shape[1])[None] < frame_counts[:, None]
        return self.linear(features) * mask.unsqueeze(-1), frame_counts


class ElementwiseFrameEncoder(nn.Module):
    """Position independent and free of matmul rounding: exact comparisons.

    (A Linear layer's matmul may round differently for differently shaped
    batches, in the last bit.)
    """

    def __init__(self, dim=6):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(dim))
        self.shift = nn.Parameter(torch.randn(dim))

    def forward(self, features, frame_counts):
        mask = torch.arange(features.shape[1])[None] < frame_counts[:, None]
        frames = torch.tanh(features * self.scale + self.shift)
        return frames * mask.unsqueeze(-1), frame_counts


class PositionEncoder(nn.Module):
    """Outputs each frame's position inside its window, and the window size."""

    def forward(self, features, frame_counts):
        positions = torch.arange(features.shape[1], dtype=torch.float)
        positions = positions.expand(features.shape[0], -1)
        sizes = frame_counts[:, None].float().expand_as(positions)
        return torch.stack([positions, sizes], dim=-1), frame_counts


def test_windows_tile_the_sequence_for_many_lengths():
    for window, stride in [(4, 3), (6, 4), (5, 5), (7, 1), (8, 6)]:
        for n in range(1, 40):
            windows = long_form_windows(n, window, stride)
            assert len(windows) == num_long_form_windows(n, window, stride)
            kept = []
            for start, end, keep_start, keep_end in windows:
                assert 0 <= start <= keep_start < keep_end <= end <= n
                assert end - start == min(window, n)
                kept.extend(range(keep_start, keep_end))
            # every frame exactly once, in order
            assert kept == list(range(n)), (n, window, stride)


def test_window_validation():
    with pytest.raises(ValueError, match="stride <= window"):
        long_form_windows(10, 4, 5)
    with pytest.raises(ValueError, match="stride <= window"):
        LongFormEncoder(LinearFrameEncoder(), window=4, stride=0)


def test_kept_frames_are_the_window_centres():
    window, stride, n = 10, 4, 57
    encoder = LongFormEncoder(PositionEncoder(), window, stride)
    frames, counts = encoder.encode_frames(
        torch.zeros(1, n, 1), torch.tensor([n])
    )
    assert counts.tolist() == [n]
    position, size = frames[0, :, 0], frames[0, :, 1]
    assert (size == window).all()  # no short tail window
    margin = (window - stride) // 2  # 3 frames of context on both sides
    for t in range(margin, n - margin):
        local = int(position[t])
        assert margin <= local <= window - 1 - margin, (t, local)


def test_chunked_equals_unchunked_for_a_position_independent_encoder():
    torch.manual_seed(0)
    lengths = [37, 8, 23, 1]
    features = torch.randn(4, 37, 6)
    counts = torch.tensor(lengths)
    for frame_encoder in (ElementwiseFrameEncoder(), LinearFrameEncoder()):
        reference, ref_counts = frame_encoder(features, counts)
        for window, stride in [(5, 3), (8, 8), (10, 1), (36, 20)]:
            for chunk_batch_size in (1, 3, 100):
                encoder = LongFormEncoder(
                    frame_encoder,
                    window,
                    stride,
                    chunk_batch_size=chunk_batch_size,
                )
                frames, out_counts = encoder.encode_frames(features, counts)
                assert out_counts.tolist() == ref_counts.tolist() == lengths
                if isinstance(frame_encoder, ElementwiseFrameEncoder):
                    # bit for bit: each output frame is the encoding of
                    # the same input frame, padding zero
                    assert torch.equal(frames, reference), (window, stride)
                else:
                    torch.testing.assert_close(
                        frames, reference, atol=1e-6, rtol=0
                    )


def test_chunk_batch_size_bounds_each_encoder_call():
    linear = LinearFrameEncoder()
    encoder = LongFormEncoder(linear, window=6, stride=4, chunk_batch_size=2)
    encoder.encode_frames(torch.randn(2, 30, 6), torch.tensor([30, 13]))
    # 30 frames -> 7 windows, 13 -> 3 windows: 10 windows in calls of <= 2
    assert len(linear.calls) == 5
    assert all(shape[0] <= 2 and shape[1] <= 6 for shape in linear.calls)


def test_window_in_seconds():
    assert seconds_to_frames(2.0) == 100 and seconds_to_frames(1.5) == 75
    encoder = LongFormEncoder(LinearFrameEncoder(), window=100.0, stride=75)
    assert (encoder.window, encoder.stride) == (100, 75)
    with pytest.raises(ValueError, match="seconds_to_frames"):
        LongFormEncoder(LinearFrameEncoder(), window=2.5, stride=1)


def test_average_pool_exact_counts_and_padding_independence():
    torch.manual_seed(1)
    for factor in (1, 2, 3, 5):
        for n in range(1, 17):
            x = torch.randn(1, n, 3)
            padded = torch.full((2, 20, 3), 1e4)
            padded[0, :n] = x[0]
            padded[1] = torch.randn(20, 3)
            out, counts = average_pool_frames(
                padded, torch.tensor([n, 20]), factor
            )
            expected = -(-n // factor)
            assert counts.tolist() == [expected, -(-20 // factor)]
            for g in range(expected):
                group = x[0, g * factor : (g + 1) * factor]
                torch.testing.assert_close(out[0, g], group.mean(0))
            if factor > 1:
                assert out[0, expected:].abs().sum() == 0


def test_window_longer_than_the_talk_is_the_plain_encoder(tiny_w2v_bert_dir):
    frame_encoder = SenseFrameEncoder.from_pretrained(tiny_w2v_bert_dir)
    torch.manual_seed(2)
    features = torch.randn(2, 30, 160)
    counts = torch.tensor([30, 17])
    plain, plain_counts = frame_encoder(features, counts)
    encoder = LongFormEncoder(frame_encoder, window=30, stride=10)
    frames, out_counts = encoder.encode_frames(features, counts)
    assert out_counts.tolist() == plain_counts.tolist()
    torch.testing.assert_close(frames, plain, atol=1e-6, rtol=1e-6)


def test_batch_with_padding_equals_each_talk_alone(tiny_w2v_bert_dir):
    """A real (position-dependent) encoder: windows depend on the talk only."""
    frame_encoder = SenseFrameEncoder.from_pretrained(tiny_w2v_bert_dir)
    torch.manual_seed(3)
    adaptor = LengthAdaptor(frame_encoder.output_dim, 8, num_layers=1).eval()
    encoder = LongFormEncoder(
        frame_encoder,
        window=12,
        stride=8,
        chunk_batch_size=4,
        pool_factor=2,
        adaptor=adaptor,
    )
    lengths = [41, 9, 26]
    talks = [torch.randn(n, 160) for n in lengths]
    batch = torch.full((3, 41, 160), 7.0)  # garbage padding
    for i, talk in enumerate(talks):
        batch[i, : len(talk)] = talk
    memory, counts = encoder(batch, torch.tensor(lengths))
    # 41 -> 21 pooled -> 11 after a stride-2 convolution
    assert counts.tolist() == [11, 3, 7]
    for i, talk in enumerate(talks):
        alone, n = encoder(talk[None], torch.tensor([len(talk)]))
        assert n.tolist() == [counts[i].item()] == [alone.shape[1]]
        torch.testing.assert_close(
            memory[i, : n[0]], alone[0], atol=1e-5, rtol=1e-5
        )
        assert memory[i, n[0] :].abs().sum() == 0


class StridedConvEncoder(nn.Module):
    """Frame ``j`` reads inputs ``[j * hop, j * hop + field)`` and nothing
    else (a convolution without padding, like XLS-R's feature encoder)."""

    input_hop, input_receptive_field = 3, 5

    def __init__(self, dim=2):
        super().__init__()
        self.conv = nn.Conv1d(1, dim, kernel_size=5, stride=3)

    def forward(self, inputs, counts):
        # [N, T, 1] -> [N, 1, T] -> [N, D, T'] -> [N, T', D]
        frames = self.conv(inputs.transpose(1, 2)).transpose(1, 2)
        out = torch.tensor([output_frame_count(int(n), 3, 5) for n in counts])
        return frames, out


def test_input_span_and_frame_count_agree():
    for hop, field in ((1, 1), (3, 5), (320, 400)):
        for start in range(4):
            for end in range(start + 1, 9):
                first, last = input_span(start, end, hop, field)
                assert first == start * hop
                assert output_frame_count(last - first, hop, field) == (
                    end - start
                )
    assert output_frame_count(399, 320, 400) == 0


@pytest.mark.parametrize("window,stride", [(4, 3), (5, 2), (7, 7), (50, 10)])
def test_windows_cut_between_strided_frames_exactly(window, stride):
    """With no context beyond the receptive field, windows change nothing."""
    torch.manual_seed(4)
    conv = StridedConvEncoder().eval()
    encoder = LongFormEncoder(conv, window=window, stride=stride)
    assert (encoder.hop, encoder.receptive_field) == (3, 5)
    lengths = [62, 5, 31, 17]  # 20, 1, 9 and 5 frames
    inputs = torch.full((4, 62, 1), 9.0)  # garbage padding
    for i, n in enumerate(lengths):
        inputs[i, :n] = torch.randn(n, 1)
    with torch.no_grad():
        frames, counts = encoder.encode_frames(inputs, torch.tensor(lengths))
        assert counts.tolist() == [20, 1, 9, 5]
        assert frames.shape == (4, 20, 2)
        for i, n in enumerate(lengths):
            whole, _ = conv(inputs[i : i + 1, :n], torch.tensor([n]))
            torch.testing.assert_close(frames[i, : counts[i]], whole[0])
            assert frames[i, counts[i] :].abs().sum() == 0


def test_hop_and_receptive_field_are_checked():
    with pytest.raises(ValueError, match="hop <= receptive_field"):
        LongFormEncoder(lambda x, n: (x, n), 4, 2, hop=5, receptive_field=3)
    encoder = LongFormEncoder(StridedConvEncoder(), 4, 2)
    with pytest.raises(ValueError, match="needs a frame, got \\[4\\]"):
        encoder.encode_frames(torch.zeros(1, 4, 1), torch.tensor([4]))
