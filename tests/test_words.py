"""What users read speaks to them: no internal tracker numbers or team files."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = re.compile(r"\bissues? #?\d+\b|" + "STACK" + r"\.md|" + "CONVENTIONS" + r"\.md", re.IGNORECASE)


def user_facing_files():
    patterns = ["*.md", "egs/**/*.md", "recipes/**/*.md", "egs/**/*.yaml", "recipes/**/*.yaml", "egs/**/*.sh",
                "asteroid_unet/**/*.py", "tests/**/*.py", "benchmarks/*.py", "egs/**/*.py", "recipes/**/*.py",
                "Makefile", "pyproject.toml"]
    return sorted({p for pattern in patterns for p in ROOT.glob(pattern) if ".venv" not in p.parts})


def test_no_internal_references():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
             for p in user_facing_files()
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if INTERNAL.search(line)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_reference():
    assert INTERNAL.search("as " + "issue" + " 7 says") and INTERNAL.search("see " + "STACK" + ".md")
    assert not INTERNAL.search("a known issue with 2 channels")
