"""Downstream tasks on a trained SENSE encoder, and where its pooling looks.

* :mod:`.downstream`: the encoder's frames for a task head, and the
  length adaptors between them;
* :mod:`.slu`: end-to-end SLU by CTC over tagged transcripts (SLUE-VoxPopuli
  NER, MEDIA);
* :mod:`.seq2seq`: text decoders over speech frames (CoVoST 2 translation,
  SLUE-TED summarization);
* :mod:`.attention`: the paper's analysis of the pooling weights (figures
  and statistics), on real or synthesised speech.
"""
