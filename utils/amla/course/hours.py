"""The course in one place: the repository URL, the hours, and the set-up cell every notebook starts with.

`amla build` writes the set-up cell into every notebook and the hour table into README.md from
this file, so the URL and the titles are never typed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REPO_URL = "https://github.com/amla-course/amla"
"""Where the course lives; Colab installs the package from here and the badges point here."""

BRANCH = "main"

SOURCE_DIR = "solutions"
"""Where the hour sources ``NN_slug.py`` and the complete notebooks live."""
STUDENT_DIR = "hours"
"""Where the student notebooks live."""


@dataclass(frozen=True)
class Hour:
    number: int
    slug: str
    title: str
    extras: tuple[str, ...] = field(default=())
    """Optional dependency groups of pyproject.toml this hour needs (installed on Colab by the set-up cell)."""

    @property
    def stem(self) -> str:
        return f"{self.number:02d}_{self.slug}"


HOURS: tuple[Hour, ...] = (
    Hour(1, "toolkit", "The toolkit: GPU-aware training"),
    Hour(2, "attention", "Attention from first principles"),
    Hour(3, "seq2seq", "Seq2seq with attention"),
    Hour(4, "transformer_block", "Multi-head attention and the Transformer block"),
    Hour(5, "encoder_decoder", "The encoder-decoder Transformer"),
    Hour(6, "gpt", "GPT from scratch"),
    Hour(7, "pretrained", "BERT, T5 and pretrained transformers", ("pretrained",)),
    Hour(8, "vit", "Vision Transformer"),
    Hour(9, "efficient", "Efficient and scalable transformers"),
    Hour(10, "gan", "GANs from scratch"),
    Hour(11, "dcgan", "DCGAN and conditional GANs"),
    Hour(12, "gan_stability", "Stabilizing and evaluating GANs"),
    Hour(13, "message_passing", "Graphs and message passing", ("graphs",)),
    Hour(14, "gat_sage", "GAT, GraphSAGE and graph-level tasks", ("graphs",)),
    Hour(15, "rl_foundations", "RL foundations", ("rl",)),
    Hour(16, "dqn", "Deep Q-Networks", ("rl",)),
    Hour(17, "policy_gradients", "Policy gradients", ("rl",)),
    Hour(18, "decision_transformer", "Capstone: attention meets RL", ("rl",)),
)


def hour(number: int) -> Hour:
    """The hour with this number (1-18)."""
    for h in HOURS:
        if h.number == number:
            return h
    raise ValueError(f"no hour {number}: the course has hours 1 to {len(HOURS)}")


def pip_target(extras: tuple[str, ...] = ()) -> str:
    """The pip requirement that installs the course package (with extras) from the repository."""
    extra = f"[{','.join(extras)}]" if extras else ""
    return f"amla{extra} @ git+{REPO_URL}@{BRANCH}"


def colab_url(stem: str) -> str:
    """Colab link that opens the student notebook hours/<stem>.ipynb straight from GitHub."""
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/hours/{stem}.ipynb"


def setup_cell(h: Hour) -> str:
    """Source of the first cell of every notebook: install on Colab, then import, device, seed, profile."""
    return "\n".join(
        [
            "# Course set-up, the same in every hour. On Colab it installs the course package `amla`",
            "# (and what this hour needs); elsewhere `make lab` has installed it already.",
            "import sys, subprocess",
            "if \"google.colab\" in sys.modules:",
            f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", {pip_target(h.extras)!r}], check=True)",
            "import amla",
            f"device = amla.setup(hour={h.number}, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile",
        ]
    )
