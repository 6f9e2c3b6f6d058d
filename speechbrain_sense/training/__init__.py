"""What a SENSE or SENSIA training run needs around SpeechBrain's ``Brain``.

The command line (:mod:`.arguments`), the end of a DDP run
(:mod:`.distributed`), checkpoints that survive a bad disk
(:mod:`.resilient_checkpointer`) and a resume that replays the interrupted
run (:mod:`.random_state`), and the alignment objectives (:mod:`.losses`).
"""
