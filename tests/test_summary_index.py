"""results/summary/README.md: rows of every experiment summary filed under the right paper."""

import pytest

from homlearn.evaluate.summary_index import paper_of, write_index

HEAD = "| experiment | our metric | paper value | data size (train/test) | epochs | hardware |\n| --- | --- | --- | --- | --- | --- |\n"


def test_index_groups_rows_by_paper_and_links_sources(tmp_path):
    s = tmp_path / "summary"
    s.mkdir()
    (s / "history_surrogates.md").write_text(
        "# History\n\nintro\n\n" + HEAD + "| composite1d N = 1, error vs k (Fig. 1c) | k=1: 0.97% | ~1% | 300/100 | 60 + 40 | CPU |\n")
    (s / "history_surrogates_cp_paths2d.md").write_text(
        HEAD + "| cp_paths2d PCA-Net error vs training size (pcanet Fig. 1a) | 12% | 5% | 240/60 | 100 | CPU |\n"
        "| cp_paths2d deviatoric RNO error vs k (rno Fig. 7c) | 9% | 3% | 240/60 | 100 | CPU |\n")
    (s / "field_surrogates.md").write_text(
        HEAD + "| elastic_ls CR 10, RLN test MASE (Table 1) | 9.00% | 1.21% | 240/120/240 | 8 | CPU |\n"
        "| cp_grid3d, dGCNN RMSE vs strain (Fig. 11a) | 3 MPa | - | 168/24 | 100 | CPU |\n")
    text = write_index(s / "README.md", [s / "history_surrogates.md", s / "history_surrogates_cp_paths2d.md",
                                         s / "history_surrogates_mg_taylor.md", s / "field_surrogates.md"])
    sections = {t.split("\n", 1)[0]: t for t in text.split("\n## ")[1:]}
    gcnn, pcanet, rno, rln = (next(v for k, v in sections.items() if f"'{p}'" in k)
                              for p in ("gcnn", "pcanet", "rno", "rln"))
    assert "dGCNN" in gcnn and "RLN" not in gcnn
    assert "PCA-Net" in pcanet and "(history_surrogates_cp_paths2d.md)" in pcanet
    assert "composite1d" in rno and "deviatoric RNO" in rno and "PCA-Net" not in rno
    assert "RLN test MASE" in rln and "[field_surrogates.md](field_surrogates.md)" in rln
    assert "history_surrogates_mg_taylor.md" in sections["Not produced yet"]
    assert (s / "README.md").read_text() == text
    # each data row has the six columns plus the link
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln and "experiment" not in ln]
    assert len(rows) == 5 and all(ln.count("|") == 8 for ln in rows)


def test_index_refuses_a_malformed_summary_naming_it(tmp_path):
    bad = tmp_path / "field_surrogates.md"
    bad.write_text(HEAD + "| elastic_ls CR 10 | 9% | 1.2% |\n")
    with pytest.raises(ValueError, match="field_surrogates.md.*3 cells"):
        write_index(tmp_path / "README.md", [bad])


@pytest.mark.parametrize("experiment, paper", [
    ("elastic_ls CR 50, ordering RLN < RLN-t < FLN", "rln"), ("heat2d fGCNN vs rGCNN (Fig. 13a)", "gcnn"),
    ("cp_grid2d CNN baseline", "gcnn"), ("mg_taylor PCA-Net error vs size (rno Fig. 8b)", "pcanet"),
    ("laminate M3, error vs k (Fig. 3a, direct)", "rno")])
def test_paper_of(experiment, paper):
    assert paper_of(experiment) == paper
