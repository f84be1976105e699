import hashlib

from conftest import SAMPLE_CITIES, SAMPLES


def test_sha256sums_match_every_file():
    listed = {}
    for line in (SAMPLES / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    on_disk = {
        p.relative_to(SAMPLES).as_posix()
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.name not in ("SHA256SUMS", "README.md")
    }
    assert on_disk == set(listed), "SHA256SUMS and the files in data/sample_tiles differ"
    for name, digest in listed.items():
        assert hashlib.sha256((SAMPLES / name).read_bytes()).hexdigest() == digest, name


def test_sample_folder_is_small_and_complete():
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total <= 20 * 1024 * 1024
    for city in SAMPLE_CITIES:
        for date in ("imgs_1", "imgs_2"):
            assert len(list((SAMPLES / city / date).glob("*_B*.tif"))) == 13
        assert (SAMPLES / city / "cm" / f"{city}-cm.tif").is_file()
    assert "CC BY-NC-SA" in (SAMPLES / "README.md").read_text()
