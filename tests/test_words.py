"""What users read speaks to them: no internal tracker numbers or team files, no words of the
machines this project happened to run on (time lent on them), and no commit hashes in its documents."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = re.compile(r"\bissues? #?\d+\b|" + "STACK" + r"\.md|" + "CONVENTIONS" + r"\.md", re.IGNORECASE)
# Describe hardware as a user would ("one NVIDIA H200", "2 CPU cores of an AMD EPYC").
MACHINE = re.compile(r"\blea" + r"se[sd]?\b|\bmachine" + r" kind\b|\bthis project's [\w -]*machine\b|\bCI" + r" machine\b",
                     re.IGNORECASE)
# A commit hash: 7 to 40 hex digits with at least one letter and one digit (users cannot look it up).
COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")


def user_facing_files():
    patterns = ["*.md", "egs/**/*.md", "recipes/**/*.md", "benchmarks/**/*.md", "docs/**/*.md", "egs/**/*.yaml",
                "recipes/**/*.yaml", "egs/**/*.sh", "asteroid_unet/**/*.py", "tests/**/*.py", "benchmarks/**/*.py",
                "egs/**/*.py", "recipes/**/*.py", "Makefile", "pyproject.toml"]
    return sorted({p for pattern in patterns for p in ROOT.glob(pattern) if ".venv" not in p.parts})


def user_documents():
    return [p for p in user_facing_files() if p.suffix == ".md"]


def lines_matching(files, pattern):
    return [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
            for p in files
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]


def test_no_internal_references():
    found = lines_matching(user_facing_files(), INTERNAL)
    assert not found, "\n".join(found)


def test_no_words_of_our_own_machines():
    found = lines_matching(user_facing_files(), MACHINE)
    assert not found, "\n".join(found)


def test_no_commit_hashes_in_user_documents():
    found = lines_matching(user_documents(), COMMIT)
    assert not found, "\n".join(found)


def test_the_checks_find_what_they_look_for():
    assert INTERNAL.search("as " + "issue" + " 7 says") and INTERNAL.search("see " + "STACK" + ".md")
    assert not INTERNAL.search("a known issue with 2 channels")
    assert MACHINE.search("trained during a 15-minute lea" + "se") and MACHINE.search("on a GPU lea" + "se")
    assert MACHINE.search("on this project's 2-core CPU " + "machine") and MACHINE.search("a CI " + "machine")
    assert not MACHINE.search("see the release notes; please") and not MACHINE.search("one NVIDIA H200")
    assert COMMIT.search("`git show 48019" + "ad:weights.pth`") and COMMIT.search("fixed in " + "ee27efa")
    assert not any(COMMIT.search(s) for s in ("2026-11-26", "step 1200000", "sha256 " + "0" * 63 + "a", "decade"))


def test_no_paths_of_the_development_checkout():
    """User documents, the recipes and the package name the user's own folders (arguments such as
    ``--musdb_root``, ``$DATA``), never where this repository's developers keep their data."""
    dev_path = re.compile(r"\.\./" + r"shared\b|\bshared/" + r"data\b")
    files = [p for p in user_facing_files()
             if p.parts[len(ROOT.parts)] in ("asteroid_unet", "egs", "recipes") or p.parent == ROOT]
    assert len(files) > 20
    found = lines_matching(files, dev_path)
    assert not found, "\n".join(found)
