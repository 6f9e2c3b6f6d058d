"""SENSE speech encoders: build, pool, train, load, export.

* :mod:`.w2v_bert` and :mod:`.xls_r`: the student encoders (w2v-BERT 2.0
  for SENSE, XLS-R for the SAMU-XLSR baseline) and their features;
* :mod:`.pooling` (length-masked attentive pooling and the projection) and
  :mod:`.student` (encoder plus head, one module for DDP);
* :mod:`.long_form`: recordings longer than the encoder's context;
* :mod:`.checkpoint`, :mod:`.export`, :mod:`.onnx_export`: a training run's
  checkpoint to a model folder that loads with SpeechBrain alone, or to
  ONNX;
* :mod:`.pretrained` (the classes an exported folder builds, bundled into
  its ``custom.py``) and :mod:`.inference` (:class:`SenseEncoder`, the
  ``EncoderClassifier`` users load).
"""
