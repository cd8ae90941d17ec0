"""Simulated labelers (``python -m rlhf simulate``) against a live studio server: they label through the real HTTP
API, every task ends with k submitted assignments, and their rankings follow the hidden preference."""

import io
import json
import random
import socket
import subprocess
import sys

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from PIL import Image
from rest_framework.authtoken.models import Token

from labelstudio_site.studio import services, tasks
from labelstudio_site.studio.models import Assignment, AssignmentStatus, LabelTask, Rating, VariantStatus
from labelstudio_site.studio.roles import LABELERS_GROUP
from labelstudio_site.training.services import model_version_base_ensure
from rlhf.__main__ import main
from rlhf.oracle import oracle_ceiling, read_oracle_scores
from rlhf.pairs import Answer, PairOptions, task_pairs
from rlhf.preferences import COVER_SWITCHES, SimCover, brightness_energy, high_valence, mean_luminance
from rlhf.simulate import answers_for, rating_from_score
from tests.conftest import ROOT

ENERGIES = [0.1, 0.4, 0.6, 0.9]
VALENCES = [0.7, 0.2, 0.9, 0.4]


def cover_png(grey: int, salt: int) -> bytes:
    """A flat grey 64x64 cover; one pixel differs per salt so that every cover is a distinct file."""
    image = Image.new("RGB", (64, 64), (grey, grey, grey))
    image.putpixel((0, 0), (salt % 256, grey, grey))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def features(index: int) -> dict:
    return {
        "genre": "pop",
        "key": "C",
        "mode": "major",
        "time_signature": 4,
        "tempo": 120.0,
        "loudness": -8.0,
        "acousticness": 0.3,
        "danceability": 0.5,
        "energy": ENERGIES[index],
        "instrumentalness": 0.1,
        "liveness": 0.1,
        "speechiness": 0.05,
        "valence": VALENCES[index],
    }


@pytest.fixture
def studio(live_server, settings, tmp_path, monkeypatch):
    """A live server, a staff token, and a round of 2 bright and 2 dark covers with 4 rendered variants each."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.LABEL_MIN_LISTEN_S = 5.0
    monkeypatch.setattr(tasks.cover_generate_task, "delay", lambda *args: None)  # variants are "rendered" below
    # get_or_create: a transactional test earlier in the run flushes the group its data migration made.
    Group.objects.get_or_create(name=LABELERS_GROUP)
    staff = get_user_model().objects.create_user("boss", is_staff=True)
    covers = [
        services.cover_create(data=cover_png(grey, salt), name=f"{salt}.png")[0]
        for salt, grey in enumerate((235, 220, 25, 40))
    ]
    generation_round = services.round_create(
        name="simulated",
        covers=covers,
        captioner_version=model_version_base_ensure(profile="tiny"),
        variants_per_cover=len(ENERGIES),
        seed=1,
        overlap_k=2,
    )
    for variant in generation_round.variants.all():
        variant.status, variant.duration_s, variant.peaks = VariantStatus.DONE, 3.0, [0.5] * 20
        variant.features = features(variant.index)
        variant.audio.name = f"audio/{variant.pk:032x}.mp3"  # the simulator never downloads audio
        variant.save()
    LabelTask.objects.filter(round=generation_round).update(ready=True)
    return {
        "url": live_server.url,
        "token": Token.objects.create(user=staff).key,
        "round": generation_round,
        "bright": {cover.pk for cover in covers[:2]},
    }


def simulate_cli(studio, *extra: str) -> int:
    return main(["simulate", "--server", studio["url"], "--admin-token", studio["token"], *extra])


@pytest.mark.django_db(transaction=True)
def test_three_labelers_fill_every_task_k_times_and_rank_by_the_hidden_preference(studio, capsys):
    code = simulate_cli(studio, "--labelers", "3", "--noise", "0.05", "--seed", "7", "--concurrency", "3")
    out = capsys.readouterr().out
    assert code == 0, out
    # 4 tasks x k = 2: every slot is filled, and a third labeler finds nothing it has not done.
    assert "3 labelers submitted 8 assignments with 0 errors" in out
    labelers = get_user_model().objects.filter(username__startswith="sim-")
    assert labelers.count() == 3 and all(user.groups.filter(name=LABELERS_GROUP).exists() for user in labelers)

    for task in LabelTask.objects.filter(round=studio["round"]):
        assert task.assignments.filter(status=AssignmentStatus.SUBMITTED).count() == 2 == task.active_count
        assert task.assignments.values("labeler").distinct().count() == 2
    submitted = Assignment.objects.filter(status=AssignmentStatus.SUBMITTED)
    # Every rating exactly once: one per (assignment, variant), ranks 1-4 in each assignment.
    assert Rating.objects.count() == submitted.count() * len(ENERGIES) == 32
    for assignment in submitted:
        ratings = list(assignment.ratings.select_related("variant"))
        assert sorted(r.variant_id for r in ratings) == sorted(assignment.order)
        assert sorted(r.rank for r in ratings) == [1, 2, 3, 4]
        assert all(r.listened_s == 3.0 for r in ratings)

    # The hidden preference: bright covers want energy, dark ones calm. Chance would agree in half the tasks.
    agree = 0
    for assignment in submitted.select_related("task"):
        by_rank = {r.rank: r for r in assignment.ratings.select_related("variant")}
        top, bottom = by_rank[1].variant.features["energy"], by_rank[4].variant.features["energy"]
        bright = assignment.task.cover_id in studio["bright"]
        agree += (top > bottom) if bright else (top < bottom)
        assert by_rank[1].musicality >= by_rank[4].musicality
        assert by_rank[1].compatibility == by_rank[1].musicality
    assert agree >= 7  # of 8; with noise 0.05 on a 0.8 score gap it is 8 in practice


@pytest.mark.django_db(transaction=True)
def test_max_tasks_stops_the_run_and_a_plugged_in_preference_is_used(studio, capsys):
    code = simulate_cli(
        studio, "--labelers", "2", "--max-tasks", "3", "--noise", "0", "--preference", "rlhf.preferences:high_valence"
    )
    assert code == 0
    assert "2 labelers submitted 3 assignments with 0 errors" in capsys.readouterr().out
    submitted = Assignment.objects.filter(status=AssignmentStatus.SUBMITTED)
    assert submitted.count() == 3 and Assignment.objects.count() == 3  # nothing left open
    for assignment in submitted:
        ranked = [r.variant.features["valence"] for r in assignment.ratings.select_related("variant").order_by("rank")]
        assert ranked == sorted(VALENCES, reverse=True)  # no noise: exactly the preference's order


@pytest.mark.django_db(transaction=True)
def test_labelers_get_403_on_the_reveal_over_http_and_anonymous_users_401(studio):
    simulate_cli(studio, "--labelers", "1", "--max-tasks", "1")
    assignment = Assignment.objects.get()
    token = Token.objects.get(user=assignment.labeler).key
    url = f"{studio['url']}/api/label/assignments/{assignment.pk}/reveal/"
    labeler_response = httpx.get(url, headers={"Authorization": f"Token {token}"})
    assert labeler_response.status_code == 403 and "features" not in labeler_response.text
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Token {studio['token']}"}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_bad_admin_token_is_exit_1_with_a_sentence(studio, capsys):
    assert main(["simulate", "--server", studio["url"], "--admin-token", "not-a-token"]) == 1
    assert "refused the admin token" in capsys.readouterr().err
    plain = get_user_model().objects.create_user("plain")
    assert main(["simulate", "--server", studio["url"], "--admin-token", Token.objects.create(user=plain).key]) == 1
    assert "not staff" in capsys.readouterr().err
    assert not get_user_model().objects.filter(username__startswith="sim-").exists()


def test_an_unreachable_server_is_exit_1_with_a_sentence(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    assert main(["simulate", "--server", f"http://127.0.0.1:{port}", "--admin-token", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("simulate: cannot reach the server at") and "Traceback" not in err


def not_a_preference(cover):
    return 0.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("brightness_energy", "must be module:function"),
        ("no_such_module_xyz:f", "cannot import the preference module 'no_such_module_xyz'"),
        ("rlhf.preferences:no_such_function", "has no 'no_such_function'"),
        ("rlhf.simulate:CREATE_CHUNK", "is a int, not a function"),
        ("tests.rlhf.test_simulate:not_a_preference", "must take two arguments"),
    ],
)
def test_a_bad_preference_is_exit_2_with_a_sentence_before_any_request(spec, message, capsys):
    # Port 9 (discard) is never contacted: the preference is checked first.
    assert main(["simulate", "--server", "http://127.0.0.1:9", "--admin-token", "x", "--preference", spec]) == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().endswith(".")


def test_the_cli_in_a_fresh_interpreter_exits_2_without_a_traceback_and_never_imports_django():
    bad = subprocess.run(
        [sys.executable, "-m", "rlhf", "simulate", "--server", "http://127.0.0.1:9", "--preference", "nope:f"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope" in bad.stderr
    probe = "import sys, rlhf.__main__, rlhf.simulate; print(sorted(m for m in sys.modules if m.startswith('django')))"
    clean = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and clean.stdout.strip() == "[]", clean.stderr


def test_ratings_are_a_monotone_mapping_of_the_score_by_fifths():
    assert [rating_from_score(s) for s in (-1, 0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0, 3)] == [1, 1, 1, 2, 3, 4, 5, 5, 5]
    scores = sorted(random.Random(0).uniform(-0.5, 1.5) for _ in range(200))
    ratings = [rating_from_score(s) for s in scores]
    assert ratings == sorted(ratings)


def sim_cover(grey: int) -> SimCover:
    return SimCover(image=Image.new("RGB", (32, 32), (grey, grey, grey)), cover_url="/media/x.png", assignment_id=1)


def test_brightness_energy_wants_energy_on_bright_covers_and_calm_on_dark_ones():
    assert mean_luminance(sim_cover(255).image) == 1.0 and mean_luminance(sim_cover(0).image) == 0.0
    bright, dark = sim_cover(230), sim_cover(30)
    assert brightness_energy(bright, {"energy": 0.9}) > brightness_energy(bright, {"energy": 0.1}) > 0
    assert brightness_energy(dark, {"energy": 0.1}) > brightness_energy(dark, {"energy": 0.9})
    assert brightness_energy(sim_cover(128), {"energy": 0.9}) == pytest.approx(0.5, abs=0.05)  # mid grey: no taste
    assert high_valence(dark, {"valence": 0.3}) == 0.3


def test_answers_rank_by_noisy_score_and_listen_to_each_variant_to_its_end():
    assignment = {
        "assignment_id": 5,
        "min_listen_s": 5.0,
        "variants": [{"key": k, "duration_s": d} for k, d in (("a", 10.0), ("b", 2.0), ("c", None))],
    }
    reveal = {"variants": [{"key": k, "features": {"energy": e}} for k, e in (("a", 0.5), ("b", 0.95), ("c", 0.05))]}
    body, scores, clean = answers_for(
        assignment=assignment,
        reveal=reveal,
        cover=sim_cover(240),
        preference=brightness_energy,
        noise=0.0,
        rng=random.Random(0),
    )
    assert body["ranking"] == ["b", "a", "c"] and scores == clean
    assert {k: v["musicality"] for k, v in body["ratings"].items()} == {"a": 3, "b": 5, "c": 1}
    assert [body["ratings"][k]["listened_s"] for k in "abc"] == [10.0, 2.0, 5.0]
    noisy, noisy_scores, noise_free = answers_for(
        assignment=assignment,
        reveal=reveal,
        cover=sim_cover(240),
        preference=brightness_energy,
        noise=5.0,
        rng=random.Random(1),
    )
    assert sorted(noisy["ranking"]) == ["a", "b", "c"]
    assert noise_free == clean and noisy_scores != clean  # the noise goes into the answers, not the oracle


# --- the oracle file ----------------------------------------------------------------------------------------------


def export_like_pairs(options: PairOptions) -> list[dict]:
    """Pair rows as a preference export makes them (rlhf.pairs from the stored ratings), with the export's ids."""
    rows = []
    for task in LabelTask.objects.order_by("pk"):
        ratings = Rating.objects.filter(assignment__task=task, assignment__status=AssignmentStatus.SUBMITTED)
        answers = [
            Answer(r.assignment.labeler_id, r.variant_id, r.musicality, r.compatibility, r.rank)
            for r in ratings.select_related("assignment").order_by("assignment_id", "variant_id")
        ]
        rows += [
            {"cover_id": task.cover_id, "chosen_variant_id": p.chosen, "rejected_variant_id": p.rejected}
            for p in task_pairs(answers, options)
        ]
    return rows


@pytest.mark.django_db(transaction=True)
def test_the_oracle_file_has_the_noise_free_score_of_every_rated_variant_by_its_export_ids(studio, tmp_path, capsys):
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text("")  # appended to, not replaced
    code = simulate_cli(
        studio, "--labelers", "3", "--noise", "0.5", "--seed", "3", "--concurrency", "4", "--oracle-out", str(oracle)
    )
    assert code == 0, capsys.readouterr()
    lines = [json.loads(text) for text in oracle.read_text().splitlines()]
    submitted = Assignment.objects.filter(status=AssignmentStatus.SUBMITTED).select_related("task", "labeler")
    assert len(lines) == Rating.objects.count() == 32
    # One assignment's lines together (4 variants, keys a-d), never interleaved with another labeler's.
    blocks = [lines[start : start + 4] for start in range(0, len(lines), 4)]
    assert len({block[0]["assignment_id"] for block in blocks}) == len(blocks) == submitted.count()
    for block in blocks:
        assert {entry["assignment_id"] for entry in block} == {block[0]["assignment_id"]}
        assert [entry["key"] for entry in block] == ["a", "b", "c", "d"]
    by_id = {assignment.pk: assignment for assignment in submitted}
    for entry in lines:
        assert list(entry) == ["assignment_id", "labeler", "cover_id", "variant_id", "key", "score"]
        assignment = by_id[entry["assignment_id"]]
        assert entry["labeler"] == assignment.labeler.username and entry["cover_id"] == assignment.task.cover_id
        rating = Rating.objects.select_related("variant").get(assignment=assignment, variant_id=entry["variant_id"])
        image = Image.open(assignment.task.cover.image.path).convert("RGB")
        assert entry["score"] == brightness_energy(sim_cover_of(image), rating.variant.features)

    scores = read_oracle_scores(oracle)
    assert len(scores) == 16  # 4 covers x 4 variants, each rated by 2 labelers with the same noise-free score
    groups = {
        pk: COVER_SWITCHES["brightness_energy"].side(Image.open(image).convert("RGB"))
        for pk, image in ((cover.pk, cover.image.path) for cover in studio["round"].covers.all())
    }
    ceiling = oracle_ceiling(export_like_pairs(PairOptions(source="ranking")), scores, groups=groups)
    # Noise 0.5 on score gaps of 0.2-0.8 flips some pairs: the labels' ceiling is below 1, above chance.
    assert ceiling.missing == 0 and ceiling.pairs == 8 * 6 and 0.5 < ceiling.accuracy < 1.0
    assert sorted(ceiling.groups) == ["bright", "dark"] and sum(g.pairs for g in ceiling.groups.values()) == 48


def sim_cover_of(image: Image.Image) -> SimCover:
    return SimCover(image=image, cover_url="/media/x.png", assignment_id=0)


@pytest.mark.django_db(transaction=True)
def test_without_noise_every_label_agrees_with_the_oracle(studio, tmp_path):
    oracle = tmp_path / "oracle.jsonl"
    assert simulate_cli(studio, "--labelers", "2", "--noise", "0", "--oracle-out", str(oracle)) == 0
    scores = read_oracle_scores(oracle)
    for options in (PairOptions(source="ranking"), PairOptions(source="ratings", aggregate="mean")):
        rows = export_like_pairs(options)
        ceiling = oracle_ceiling(rows, scores)
        assert rows and ceiling.accuracy == 1.0 and ceiling.missing == 0 and ceiling.pairs == len(rows)


def test_an_oracle_file_that_cannot_be_opened_is_exit_1_before_any_request(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "oracle.jsonl"
    code = main(["simulate", "--server", "http://127.0.0.1:9", "--admin-token", "x", "--oracle-out", str(missing)])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot open the oracle file" in err and "cannot reach" not in err
