"""Log template mining: grouping accuracy on the Loghub 2k development split, and mining speed.

For each of the 8 systems of the split, mines the `Content` column of `<D>_2k.log_structured_corrected.csv`
with three miners and prints their grouping accuracy (GA, Zhu et al., "Tools and Benchmarks for Automated
Log Parsing", ICSE-SEIP 2019: the share of messages whose predicted group holds exactly the messages of
their true event): `scoring/mining.py` with its one global setting; the configuration `signatures.py`
used before it (its MASKS, similarity 0.4, numeric tokens parametrised); and drain3 with its library
defaults. A group is the set of messages with one final template, as the signatures compare them.
Then times the new miner on 20,000 synthetic 600-character lines (CPU time of one process, so per core):
once with a few hundred message shapes, as logs repeat their statements, and once with a new shape on
almost every line (word-valued fields drawn from a large vocabulary), the worst case. Usage:
    .venv/bin/python benchmarks/logparse.py [--data PATH]

The data stays where it is (default: shared/data/loghub-dev beside the repository); its licence allows
research use only, so nothing of it is copied into the repository or its tests. See its README.md.
"""

from __future__ import annotations

import argparse
import csv
import random
import string
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from releasehealth.scoring.mining import Miner, mine_templates

DATA = Path(__file__).resolve().parents[2] / "shared/data/loghub-dev"
SYSTEMS = ("Hadoop", "Zookeeper", "HPC", "Linux", "Android", "HealthApp", "Mac", "OpenStack")
LINES, WIDTH, SEED = 20_000, 600, 7

Mine = Callable[[Sequence[str]], list[str]]

# The masks of the miner before scoring.mining (release-health 1.x), kept here to measure against.
OLD_MASKS = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\w.])", "IP"),
    (r"(?<![\w<])/[A-Za-z_][\w.\-]*(?:/[\w.\-]+)*/?", "PATH"),
    (r"(?<![\w.])\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|m|h)\b", "DURATION"),
    (r"\b0x[0-9a-fA-F]+\b|(?<![\w.])(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}(?![\w.])", "HEX"),
    (r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w.])", "NUM"),
)



def load(folder: Path, system: str) -> tuple[list[str], list[str]]:
    """Return the Content and the EventId of each line of one system's labelled sample."""
    with (folder / system / f"{system}_2k.log_structured_corrected.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    return [row["Content"] for row in rows], [row["EventId"] for row in rows]


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """GA: the messages of each predicted group count as correct when the group is exactly one true event."""
    true_groups: dict[str, set[int]] = defaultdict(set)
    predicted_groups: dict[str, set[int]] = defaultdict(set)
    for index, (event, group) in enumerate(zip(truth, predicted, strict=True)):
        true_groups[event].add(index)
        predicted_groups[group].add(index)
    correct = sum(len(members) for members in predicted_groups.values() if true_groups[truth[min(members)]] == members)
    return correct / len(truth) if truth else 0.0


def drain3_templates(config: TemplateMinerConfig) -> Mine:
    def mine(messages: Sequence[str]) -> list[str]:
        miner = TemplateMiner(config=config)
        ids = [miner.add_log_message(message)["cluster_id"] for message in messages]
        return [miner.drain.id_to_cluster[cluster_id].get_template() for cluster_id in ids]

    return mine


def old_config() -> TemplateMinerConfig:
    """The configuration of `signatures._miner`, rebuilt here."""
    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(pattern, name) for pattern, name in OLD_MASKS]
    config.drain_sim_th = 0.4
    config.parametrize_numeric_tokens = True
    return config


def accuracy_table(folder: Path) -> None:
    miners: dict[str, Mine] = {
        "new": mine_templates,
        "old": drain3_templates(old_config()),
        "drain3 defaults": drain3_templates(TemplateMinerConfig()),
    }
    print(f"{'system':<10} {'lines':>6} {'events':>6}" + "".join(f" {name:>15}" for name in miners))
    totals = dict.fromkeys(miners, 0.0)
    for system in SYSTEMS:
        messages, events = load(folder, system)
        scores = {name: grouping_accuracy(events, mine(messages)) for name, mine in miners.items()}
        for name, score in scores.items():
            totals[name] += score
        print(f"{system:<10} {len(messages):>6} {len(set(events)):>6}" + "".join(f" {s:>15.3f}" for s in scores.values()))
    print(f"{'mean':<10} {'':>6} {'':>6}" + "".join(f" {t / len(SYSTEMS):>15.3f}" for t in totals.values()))


def synthetic_lines(count: int, width: int, seed: int, vocabulary: int) -> list[str]:
    """About `width`-character lines of 40 statements, 1 token in 5 a value; word-valued fields take one
    of `vocabulary` words, so a small vocabulary repeats message shapes and a large one rarely does."""
    rng = random.Random(seed)
    words = "request order payment cache shard replica session token queue worker retry upstream handler".split()
    names = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9))) for _ in range(vocabulary)]
    fields: list[Callable[[], str]] = [
        lambda: str(rng.randrange(10**6)),
        lambda: f"{rng.randrange(1, 5000)}ms",
        lambda: f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}:{rng.randrange(1024, 65536)}",
        lambda: f"{rng.getrandbits(64):016x}",
        lambda: "-".join(f"{rng.getrandbits(bits):0{bits // 4}x}" for bits in (32, 16, 16, 16, 48)),
        lambda: f"/api/v1/orders/{rng.randrange(10**5)}",
        lambda: f"attempt={rng.randrange(1, 9)}",
        lambda: rng.choice(names),
    ]
    statements = []
    for _ in range(40):
        parts: list[str | int] = []
        while sum(len(str(part)) + 4 for part in parts) < width:
            parts.append(rng.randrange(len(fields)) if rng.random() < 0.2 else rng.choice(words))
        statements.append(parts)
    weights = [1 / (rank + 1) for rank in range(len(statements))]
    return [
        " ".join(fields[part]() if isinstance(part, int) else part for part in rng.choices(statements, weights)[0])
        for _ in range(count)
    ]


def speed() -> None:
    print(f"\n{'mining speed (new miner, one core)':<40} {'lines':>7} {'mean chars':>10} {'shapes':>7} {'lines/s':>9}")
    for label, vocabulary in (("repeating shapes (8 words)", 8), ("new shape on most lines", 100_000)):
        lines = synthetic_lines(LINES, WIDTH, SEED, vocabulary)
        miner = Miner()
        started = time.process_time()
        ids = [miner.add(line) for line in lines]
        miner.template(ids[0])  # the final templates are computed once, after the last message
        elapsed = time.process_time() - started
        mean = sum(map(len, lines)) / len(lines)
        print(f"{label:<40} {len(lines):>7} {mean:>10.0f} {len(set(ids)):>7} {len(lines) / elapsed:>9.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help=f"the Loghub 2k development split (default: {DATA})")
    args = parser.parse_args(argv)
    if not (args.data / SYSTEMS[0]).is_dir():
        print(f"no Loghub data at {args.data}: pass --data", file=sys.stderr)
        return 2
    accuracy_table(args.data)
    speed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
