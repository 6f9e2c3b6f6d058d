"""Semantic speech search: index a folder of recordings, query by meaning.

``python -m speechbrain_sense.search`` (:mod:`.__main__`) indexes a folder
with an exported SENSE encoder and answers typed or spoken queries in any
language the encoder and its teacher share:

* :mod:`.passages`: cutting recordings into passages (VAD, windows);
* :mod:`.store`: the SQLite index and its memory-mapped float16 matrix;
* :mod:`.indexer`: walking a folder and bringing the index up to date;
* :mod:`.query`: loading the model and its teacher, ranking passages
  (exact, or FAISS past a measured size);
* :mod:`.server`: the web page.

Authors
 * speechbrain-sense developers 2026
"""
