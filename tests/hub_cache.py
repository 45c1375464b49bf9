"""A Hugging Face hub cache in the real layout (blobs, snapshots linking to them, refs/main), filled with local folders.

huggingface_hub, transformers, peft and datasets read it exactly as they read a cache their own downloads
filled, online (answering from it when the network is absent) and offline.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hub_formats"
CLIP_TASKS = ["sun397", "stanford_cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
CLIP_DATASETS = {"sun397": "tanganke/sun397", "stanford_cars": "tanganke/stanford_cars", "resisc45": "tanganke/resisc45", "eurosat": "tanganke/eurosat",
                 "svhn": "ufldl-stanford/svhn", "gtsrb": "tanganke/gtsrb", "mnist": "ylecun/mnist", "dtd": "tanganke/dtd"}  # fmt: skip
GLUE_COLUMNS = {"cola": ["sentence"], "mnli": ["premise", "hypothesis"], "mrpc": ["sentence1", "sentence2"], "qnli": ["question", "sentence"],
                "qqp": ["question1", "question2"], "rte": ["sentence1", "sentence2"], "sst2": ["sentence"], "stsb": ["sentence1", "sentence2"]}  # fmt: skip


def cache_repo(cache: Path, repo_id: str, folder: Path, repo_type: str = "model") -> Path:
    """Put every file under `folder` into `cache` as the snapshot of `repo_id` that refs/main names."""
    repo = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def hub_environment(cache: Path, online: bool, root: Path) -> dict[str, str]:
    """The environment of a user's run against `cache`: offline (HF_HUB_OFFLINE=1) or online with the hub out of reach.

    Online, the endpoint is a closed local port, so no request can leave this machine however the network is set
    up: every lookup fails at once, as it does on a machine without a network, and the cache answers.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(cache), HF_HOME=str(root / "hf_home"), HF_DATASETS_CACHE=str(root / f"datasets_{online}"))
    if online:
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    else:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def _card(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose YAML declares each configuration's data files per split, as GLUE's and SVHN's do."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"] + [f"  - split: {s}\n    path: {p}" for s, p in splits.items()]
    return "\n".join([*lines, "---", ""])


def _image_split(n: int, seed: int, classes: int = 3) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=[f"kind {c}" for c in "abc"[:classes]])})
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    return datasets.Dataset.from_dict({"image": images, "label": [i % classes for i in range(n)]}, features=features)


def image_datasets(cache: Path, root: Path) -> None:
    for seed, (task, repo) in enumerate(CLIP_DATASETS.items()):
        folder = root / "datasets" / task
        prefix = "cropped_digits" if task == "svhn" else "data"
        for split, n in (("train", 5), ("test", 6)):
            (folder / prefix).mkdir(parents=True, exist_ok=True)
            _image_split(n, seed * 10 + n).to_parquet(str(folder / prefix / f"{split}-00000-of-00001.parquet"))
        if task == "svhn":  # two configurations, as the hub's SVHN: only cropped_digits is read
            (folder / "README.md").write_text(_card({"cropped_digits": {"train": "cropped_digits/train-*", "test": "cropped_digits/test-*"},
                                                      "full_numbers": {"train": "full_numbers/train-*"}}))  # fmt: skip
        cache_repo(cache, repo, folder, repo_type="dataset")


def glue_dataset(cache: Path, root: Path) -> None:
    folder, configs = root / "datasets" / "glue", {}
    for task, columns in GLUE_COLUMNS.items():
        test = "validation_matched" if task == "mnli" else "validation"
        for split, n in (("train", 5), (test, 6)):
            rows = {c: [f"{c} {i} of {task}" for i in range(n)] for c in columns}
            rows["label"] = [i * 0.9 for i in range(n)] if task == "stsb" else [i % (3 if task == "mnli" else 2) for i in range(n)]
            rows["idx"] = list(range(n))
            (folder / task).mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_dict(rows).to_parquet(str(folder / task / f"{split}-00000-of-00001.parquet"))
        configs[task] = {"train": f"{task}/train-*", test: f"{task}/{test}-*"}
    (folder / "README.md").write_text(_card(configs))
    cache_repo(cache, "nyu-mll/glue", folder, repo_type="dataset")


def sentence_model(bert: Path, width: int, path: Path) -> Path:
    """A SentenceTransformer (a saved BERT, mean pooling) saved at `path`; its module classes moved in
    sentence-transformers 6, and the package's range still admits the versions before that."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer
    SentenceTransformer(modules=[Transformer(str(bert), max_seq_length=64), Pooling(width)]).save(str(path))
    return path


def tiny_sentence_model(root: Path) -> Path:
    """A SentenceTransformer (one-layer BERT on the fixtures' vocabulary, mean pooling) for msmarco-MiniLM's id."""
    from transformers import BertConfig, BertModel, BertTokenizer

    bert = root / "bert"
    BertModel(BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24)).save_pretrained(bert)
    BertTokenizer(str(FIXTURES / "t5/vocab.txt")).save_pretrained(bert)
    return sentence_model(bert, 16, root / "st")


GPT2_TASKS = {"cola": 2, "mnli": 3, "mrpc": 2, "qnli": 2, "qqp": 2, "rte": 2, "sst2": 2}  # FusionBench's GPT-2 GLUE experts and their classes


def gpt2_tokenizer(path: Path) -> Path:
    """A byte-level BPE tokenizer as GPT-2's: <|endoftext|> is its bos, eos and unk token, and there is no padding token."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    from dawe_merge.families.text.corpora import load_shipped_corpus

    texts = list(load_shipped_corpus("rotten_tomatoes")[0]["train"]["text"][:400])
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False)
    special = "<|endoftext|>"
    GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=special, eos_token=special, unk_token=special).save_pretrained(path)
    return path


def fill_gpt2_hub(root: Path) -> Path:
    """`root`/cache filled as after downloading FusionBench's GPT-2 GLUE setup: tiny random `gpt2` and `tanganke/gpt2_<task>`
    classifiers (each its own head; MNLI three classes; bodies perturbed from θ0) and the GLUE dataset."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2ForSequenceClassification, GPT2Model

    cache = root / "cache"
    tokenizer = AutoTokenizer.from_pretrained(gpt2_tokenizer(root / "gpt2_tokenizer"))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    theta0 = GPT2Model(config)
    theta0.save_pretrained(root / "gpt2")
    tokenizer.save_pretrained(root / "gpt2")
    cache_repo(cache, "gpt2", root / "gpt2")
    for seed, (task, classes) in enumerate(GPT2_TASKS.items(), start=1):
        torch.manual_seed(seed)
        settings = {k: v for k, v in config.to_dict().items() if k not in ("id2label", "label2id")}
        expert = GPT2ForSequenceClassification(GPT2Config(**settings, num_labels=classes))
        expert.transformer.load_state_dict(theta0.state_dict())
        with torch.no_grad():
            for p in expert.transformer.parameters():
                p.add_(0.05 * torch.randn_like(p))
        expert.save_pretrained(root / "gpt2_experts" / task)
        tokenizer.save_pretrained(root / "gpt2_experts" / task)
        cache_repo(cache, f"tanganke/gpt2_{task}", root / "gpt2_experts" / task)
    glue_dataset(cache, root)
    return cache


def fill_user_hub(root: Path) -> Path:
    """`root`/cache filled as a user's cache after downloading the CLIP ViT-B/32 and Flan-T5-base paper setups."""
    cache = root / "cache"
    cache_repo(cache, "openai/clip-vit-base-patch32", FIXTURES / "clip")
    for task in CLIP_TASKS:
        repo_task = task.replace("_", "-")
        cache_repo(cache, f"tanganke/clip-vit-base-patch32_{repo_task}", FIXTURES / f"clip_{repo_task}")
    cache_repo(cache, "microsoft/resnet-18", FIXTURES / "resnet")
    cache_repo(cache, "google/flan-t5-base", FIXTURES / "t5")
    for task in GLUE_COLUMNS:
        cache_repo(cache, f"tanganke/flan-t5-base_glue-{task}_lora-16", FIXTURES / f"t5_lora_{task}")
    cache_repo(cache, "sentence-transformers/msmarco-MiniLM-L12-cos-v5", tiny_sentence_model(root / "msmarco"))
    image_datasets(cache, root)
    glue_dataset(cache, root)
    return cache


@contextlib.contextmanager
def failing_hub(status: int = 503):
    """A local hub that answers its front page (200) and fails every other request with `status`, as a hub whose file
    servers are down does; yields its endpoint (for HF_ENDPOINT)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            code = 200 if self.path in ("", "/") else status
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *args) -> None:  # quiet: the test reads the run's own output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
