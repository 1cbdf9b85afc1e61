"""The web page's functions, called directly (the browser test drives the page itself)."""
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from asteroid_unet import app, guard
from asteroid_unet.audio import AudioReader
from asteroid_unet.cli import main
from asteroid_unet.separate import separate_file
from asteroid_unet.spectrogram import render_spectrograms, spectrogram_db


@pytest.fixture
def model_file(tmp_path, small_model):
    path = tmp_path / "tiny.pth"
    torch.save(small_model.serialize(), path)
    return str(path)


@pytest.fixture
def sessions(tmp_path):
    return app.Sessions(tmp_path / "work")


def noise_file(path, seconds=1.0, rate=22050, channels=2, **kw):
    data = np.random.default_rng(0).standard_normal((int(seconds * rate), channels)).astype(np.float32) * 0.1
    sf.write(str(path), data, rate, **kw)
    return path


def test_separate_song_gives_the_cli_stems_a_zip_and_three_spectrograms(tmp_path, model_file, sessions):
    song = noise_file(tmp_path / "my song.wav")
    steps = []
    result = app.separate_song(str(song), model_file, "wav", "abc", sessions, progress=lambda _, desc: steps.append(desc))
    assert result.message == "Separated my song.wav (1.0 s)."
    assert steps == ["loading the model", "drawing spectrograms"]
    assert result.players["mix"] == song  # browsers play wav: no copy
    reference = separate_file(song, tmp_path / "ref", model_file)
    for name in ("vocals", "accompaniment"):
        assert result.players[name].read_bytes() == reference[name].read_bytes()
        assert result.players[name].is_relative_to(sessions.folder("abc"))
    with zipfile.ZipFile(result.archive) as archive:
        assert sorted(archive.namelist()) == ["my song/accompaniment.wav", "my song/vocals.wav"]
        assert archive.read("my song/vocals.wav") == reference["vocals"].read_bytes()
    sizes = {Image.open(p).size for p in result.spectrograms.values()}
    assert sorted(result.spectrograms) == ["accompaniment", "mix", "vocals"] and len(sizes) == 1


def test_flac_stems_and_a_playable_copy_of_a_format_browsers_do_not_play(tmp_path, model_file, sessions):
    song = noise_file(tmp_path / "take.aiff", rate=16000, channels=1)
    result = app.separate_song(str(song), model_file, "flac", "abc", sessions)
    mix = result.players["mix"]
    assert mix.suffix == ".flac" and mix.is_relative_to(sessions.folder("abc"))
    copied, rate = sf.read(str(mix), dtype="float32")
    original, _ = sf.read(str(song), dtype="float32")
    assert rate == 16000 and np.abs(copied - original).max() < 1e-4  # 16-bit FLAC of the decoded song
    for name in ("vocals", "accompaniment"):
        info = sf.info(str(result.players[name]))
        assert info.format == "FLAC" and info.samplerate == 16000 and info.channels == 1 and info.frames == 16000


@pytest.mark.parametrize("content", [b"", b"this is not audio at all" * 40])
def test_bad_files_give_the_cli_message_in_one_line(tmp_path, model_file, sessions, capsys, content):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    assert main(["separate", str(bad), "-o", str(tmp_path / "out"), "--model", model_file]) == 1
    cli_line = capsys.readouterr().err.strip()
    reason = cli_line.split(f"{bad}: ", 1)[1]
    result = app.separate_song(str(bad), model_file, "wav", "abc", sessions)
    assert result.message == f"Error: broken.wav: {reason}"
    assert "\n" not in result.message and not result.players and result.archive is None
    assert not sessions.folder("abc").exists()


def test_longest_input_is_an_option(tmp_path, model_file, sessions):
    song = noise_file(tmp_path / "long.wav", seconds=2.0)
    result = app.separate_song(str(song), model_file, "wav", "abc", sessions, max_seconds=1.5)
    assert result.message == "Error: long.wav: 2 s long; this page accepts songs up to 1.5 s"
    assert not result.players
    assert app.separate_song(str(song), model_file, "wav", "abc", sessions, max_seconds=2.5).players


def test_one_job_per_session_at_a_time(tmp_path, model_file, sessions):
    song = noise_file(tmp_path / "a.wav")
    assert sessions.begin("abc")  # a job of this session is running
    busy = app.separate_song(str(song), model_file, "wav", "abc", sessions)
    assert busy.message.startswith("A song is still being separated in this tab") and not busy.players
    assert app.separate_song(str(song), model_file, "wav", "other", sessions).players  # other sessions go on
    sessions.end("abc")
    assert app.separate_song(str(song), model_file, "wav", "abc", sessions).players


def test_uploads_are_copied_into_secret_folders_that_go_with_the_owners_last_heartbeat(tmp_path, model_file,
                                                                                      sessions):
    tab = "k3v9x2m1qz7"  # a session id, as Gradio's page draws one
    gradio = tmp_path / "gradio" / "0123abcd"  # Gradio's per-upload folder, named by the bytes' hash
    gradio.mkdir(parents=True)
    upload = noise_file(gradio / "song.wav")
    song = sessions.keep(tab, upload)
    assert song.is_relative_to(sessions.folder(tab)) and tab not in str(song)
    assert sessions.owns(tab, song) and not sessions.owns("other", song)
    same = sessions.keep("other", upload)  # someone else sent the same bytes: Gradio gave them the same path
    assert same != song and same.read_bytes() == song.read_bytes() == upload.read_bytes()
    assert sessions.stray_age(str(upload)) == sessions.idle_seconds  # taken: swept soon, not after an hour
    first = app.separate_song(str(song), model_file, "wav", tab, sessions).players["vocals"]
    second = app.separate_song(str(song), model_file, "flac", tab, sessions).players["vocals"]
    assert first.exists() and first.parents[1] != second.parents[1]  # each job in its own folder

    assert sessions.claim(tab, "owner-token") and not sessions.claim(tab, "someone-else")
    sessions.heartbeat(tab, +1)  # the owner's tab (the guard lets no one else's heartbeat through)
    sessions.release(tab)  # what the page's unload event calls
    sessions.sweep()
    assert first.exists() and second.exists()
    sessions.heartbeat(tab, -1)  # the tab closes
    assert not sessions.folder(tab).exists() and not first.exists()
    assert same.exists() and upload.exists()  # the other visitor's copy, and Gradio's until the sweep


def test_a_running_job_keeps_its_folder_until_it_ends(tmp_path, sessions):
    kept = sessions.keep("c", noise_file(tmp_path / "c.wav"))
    sessions.heartbeat("c", +1)
    assert sessions.begin("c")
    sessions.heartbeat("c", -1)
    assert kept.exists()
    sessions.end("c")
    assert not kept.exists()


def test_sessions_that_never_connect_are_swept_when_idle(tmp_path):
    sessions = app.Sessions(tmp_path / "work", idle_seconds=0.2)
    kept = sessions.keep("api", noise_file(tmp_path / "api.wav"))
    orphan = tmp_path / "work" / "left-by-a-previous-run"
    orphan.mkdir()
    sessions.sweep()
    assert kept.exists() and orphan.exists()  # not idle yet
    time.sleep(0.3)
    sessions.sweep()
    assert not kept.exists() and not orphan.exists()


def test_limits_come_from_the_header_before_decoding(tmp_path):
    assert app.upload_limit(None) is None and app.upload_limit(60) == 60 * 96000 * 8 + 2**20
    assert app.is_loopback("127.0.0.1") and app.is_loopback("localhost") and app.is_loopback("::1")
    assert not app.is_loopback("0.0.0.0") and not app.is_loopback("example.org")
    wide = noise_file(tmp_path / "wide.wav", seconds=0.1, channels=app.MAX_CHANNELS + 1)
    sessions = app.Sessions(tmp_path / "work")
    result = app.separate_song(str(wide), None, "wav", "s", sessions, max_seconds=60)
    assert result.message == f"Error: wide.wav: {app.MAX_CHANNELS + 1} channels; this page accepts up to 8"


def test_max_seconds_defaults_when_the_page_faces_the_network(monkeypatch):
    import argparse

    monkeypatch.delenv("SPACE_ID", raising=False)
    parse = app.add_arguments(argparse.ArgumentParser()).parse_args
    assert app.max_seconds_for(parse([])) is None
    assert app.max_seconds_for(parse(["--host", "0.0.0.0"])) == app.PUBLIC_MAX_SECONDS
    assert app.max_seconds_for(parse(["--host", "0.0.0.0", "--max-seconds", "30"])) == 30
    assert app.max_seconds_for(parse(["--host", "0.0.0.0", "--max-seconds", "0"])) is None
    monkeypatch.setenv("SPACE_ID", "org/space")
    assert app.max_seconds_for(parse([])) == app.PUBLIC_MAX_SECONDS
    assert parse([]).hub is False and parse(["--hub"]).hub is True


def test_no_song():
    result = app.separate_song(None, None, "wav", "abc", app.Sessions(Path("/nonexistent")))
    assert result.message == "Upload or record a song first." and not result.players


def test_spectrogram_blocks_levels_and_frequencies(tmp_path):
    rate = 16000
    t = np.arange(3 * rate) / rate
    tone = np.stack([np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 1000 * t)], 1).astype(np.float32)
    sf.write(str(tmp_path / "loud.wav"), tone, rate, subtype="FLOAT")
    sf.write(str(tmp_path / "quiet.wav"), 0.1 * tone, rate, subtype="FLOAT")
    with AudioReader(tmp_path / "loud.wav") as reader:
        whole = spectrogram_db(reader, columns=100, block_columns=1000)
        blocks = spectrogram_db(reader, columns=100, block_columns=7)  # bounded memory, same picture
    with AudioReader(tmp_path / "quiet.wav") as reader:
        quiet = spectrogram_db(reader, columns=100)
    assert whole.shape == (1025, 100)
    audible = whole > whole.max() - 60  # below that, float32 rounding noise of a pure tone
    np.testing.assert_allclose(blocks[audible], whole[audible], atol=0.01)
    assert np.all(whole[:, 5:-5].argmax(0) == 128)  # 1000 Hz = bin 128 of a 2048-point FFT at 16 kHz
    np.testing.assert_allclose((whole - quiet)[128, 5:-5], 20.0, atol=1e-3)


def test_spectrograms_share_one_colour_scale(tmp_path):
    """A stem 40 dB below the mix is drawn darker than it, not stretched to the same brightness."""
    mix = noise_file(tmp_path / "mix.wav", seconds=2.0)
    data, rate = sf.read(str(mix), dtype="float32")
    sf.write(str(tmp_path / "quiet.wav"), data * 0.01, rate, subtype="FLOAT")
    pictures = render_spectrograms({"mix": mix, "quiet": tmp_path / "quiet.wav"}, tmp_path / "png")
    brightness = {name: np.asarray(Image.open(p).convert("L"), dtype=float).mean() for name, p in pictures.items()}
    assert brightness["quiet"] < brightness["mix"] - 20


def test_model_choices_and_what_the_picker_may_load(tmp_path, model_file):
    packaged = {"spleeter-2stems": "spleeter-2stems", "paper": "paper"}  # the default model first
    assert app.model_choices(None) == packaged and list(app.model_choices(None)) == list(packaged)
    assert list(app.model_choices("paper")) == ["paper", "spleeter-2stems"]
    choices = app.model_choices(model_file)
    assert choices == {"tiny.pth": model_file, **packaged}  # the page sees a name, not the server path
    assert app.resolve_choice("paper", choices, hub=False) == "paper"
    assert app.resolve_choice("tiny.pth", choices, hub=False) == model_file
    assert app.resolve_choice("org/name@v1", choices, hub=True) == "org/name@v1"
    with pytest.raises(ValueError, match="not a model of this page"):
        app.resolve_choice("org/name", choices, hub=False)
    for server_path in ("/etc/passwd", "../tiny.pth", model_file, str(tmp_path)):  # typed paths never reach torch.load
        with pytest.raises(ValueError, match="not a model of this page"):
            app.resolve_choice(server_path, choices, hub=True)


def test_app_command_refuses_a_bad_model_in_one_line(tmp_path, capsys):
    assert main(["app", "--model", str(tmp_path / "missing.pth"), "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("asteroid-unet: error:") and "missing.pth" in err and "\n" not in err


def test_the_space_pins_the_gradio_this_page_is_tested_with():
    from importlib.metadata import requires, version

    from asteroid_unet import hub

    assert version("gradio") == hub.GRADIO_VERSION
    assert f"gradio=={hub.GRADIO_VERSION}; extra == 'app'" in requires("asteroid-unet")


def test_app_command_without_gradio_says_which_extra_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    assert main(["app"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("asteroid-unet: error: the web page needs the [app] extra") and "\n" not in err


def test_quotas_bound_each_session_and_the_whole_upload_folder(tmp_path):
    uploads = tmp_path / "uploads"
    sessions = app.Sessions(uploads / "work", uploads, idle_seconds=0, session_quota=3000, disk_quota=5000)
    (uploads / "h1").mkdir(parents=True)
    (uploads / "h2").mkdir()
    song, other = uploads / "h1" / "a.wav", uploads / "h2" / "b.wav"
    for token, path, size in [("t1", song, 2000), ("t2", other, 2500)]:  # as the guard charges uploads
        assert sessions.reserve_upload(token, size) is None
        path.write_bytes(bytes(size))
        sessions.settle_upload(token, size, [path])
    sessions.keep("a", song)
    with pytest.raises(ValueError, match=r"^this tab would hold 0.00381 MB of files; the page keeps up to 0.00286 MB"):
        sessions.keep("a", song)
    sessions.keep("b", other)  # linked: no byte more on the disk
    assert sessions.ledger.total == 4500  # a file and its links count once
    with pytest.raises(ValueError, match=r"^the page's disk is full; try again later$"):
        sessions.make_room("c", 1000)  # a job's stems: 4500 + 1000 would pass 5000
    assert sessions.reserve_upload("t3", 500) is None  # in flight: counts at once
    assert sessions.reserve_upload("t4", 1) == "the page's disk is full; try again later"
    sessions.settle_upload("t3", 500)  # it failed: released
    assert sessions.ledger.total == 4500
    sessions.close("a")
    assert sessions.ledger.total == 4500  # Gradio's upload is still there
    app.sweep_strays({str(song)}, sessions)  # a song a session took goes after idle_seconds (0 here)
    assert not song.exists() and other.exists()
    assert sessions.ledger.total == 2500 and sessions.reserve_upload("t4", 2500) is None


def test_reservations_hold_the_quotas_under_40_simultaneous_uploads_and_read_no_disk(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    def no_disk(*args, **kwargs):
        raise AssertionError("a quota check read the disk")

    sessions = app.Sessions(tmp_path / "work", tmp_path, session_quota=3000, disk_quota=10_000)
    for name in ("stat", "lstat", "scandir", "listdir", "walk"):
        monkeypatch.setattr(os, name, no_disk)
    with ThreadPoolExecutor(40) as pool:
        one = list(pool.map(lambda i: sessions.reserve_upload("one", 1000), range(40)))
        many = list(pool.map(lambda i: sessions.reserve_upload(f"t{i}", 1000), range(40)))
    assert one.count(None) == 3 and many.count(None) == 7 and sessions.ledger.total == 10_000


def test_a_previous_runs_files_are_swept_at_start_and_nothing_else(tmp_path):
    sessions = app.Sessions(tmp_path / "asteroid-unet", tmp_path)
    old = {"upload": tmp_path / ("0" * 64) / "old.wav", "visitor": tmp_path / "asteroid-unet" / "s3cr3t" / "a.wav",
           "someone else's": tmp_path / "notes" / "keep.txt"}
    for path in old.values():
        path.parent.mkdir(parents=True)
        path.write_bytes(b"RIFF")
        os.utime(path.parent, (time.time() - 60, time.time() - 60))
    (tmp_path / "tmpabc").touch()
    os.utime(tmp_path / "tmpabc", (time.time() - 60, time.time() - 60))
    started = time.time() - 30
    new = tmp_path / ("1" * 64) / "new.wav"  # an upload of this run
    new.parent.mkdir()
    new.write_bytes(b"RIFF")
    app.sweep_before(sessions, started)
    assert not old["upload"].parent.exists() and not old["visitor"].parent.exists()
    assert not (tmp_path / "tmpabc").exists()
    assert new.exists() and old["someone else's"].exists()


def fake_gradio(folder: Path, seen: list):
    """An app with the routes of the guard's table and one it lacks: each echoes the body it got, and
    the upload route stores it and answers its path, as Gradio's does."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request):
        body = await request.body()
        seen.append(request.url.path)
        if request.url.path == "/gradio_api/upload":
            stored = folder / f"{len(seen)}.bin"
            stored.write_bytes(body)
            body = json.dumps([str(stored)]).encode()
        return Response(body)

    paths = {path for _, path in guard.ROUTES} | {"/gradio_api/call/{api_name}", "/gradio_api/deep_link"}
    return Starlette(routes=[Route(path, echo, methods=["GET", "POST"]) for path in sorted(paths)])


def test_the_guard_binds_session_ids_to_the_owner_cookie_and_refuses_other_routes(tmp_path):
    import anyio
    import httpx

    seen = []
    (tmp_path / "g").mkdir()
    sessions = app.Sessions(tmp_path / "g" / "work", tmp_path / "g", session_quota=5000, disk_quota=10_000)
    guarded = guard.SessionGuard(fake_gradio(tmp_path / "g", seen), sessions)

    async def requests():
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://page") as owner, \
                httpx.AsyncClient(transport=transport, base_url="http://page") as stranger:
            first = await owner.get("/")
            assert first.headers["set-cookie"].endswith("; Path=/; HttpOnly; SameSite=Lax")
            https = await stranger.get("/", headers={"X-Forwarded-Proto": "https"})
            assert https.headers["set-cookie"].endswith("; SameSite=None; Secure; Partitioned")
            join = {"session_hash": "v1ct1m", "fn_index": 1, "data": ["x" * 70_000]}
            joined = await owner.post("/gradio_api/queue/join", json=join)
            assert joined.status_code == 200 and json.loads(joined.content) == join  # the body reaches Gradio whole
            assert "set-cookie" not in joined.headers
            for attempt in (stranger.get("/gradio_api/queue/data", params={"session_hash": "v1ct1m"}),
                            stranger.get("/gradio_api/heartbeat/v1ct1m"),
                            stranger.post("/gradio_api/cancel", json={"session_hash": "v1ct1m", "event_id": "e"}),
                            stranger.post("/gradio_api/queue/join", json=join)):
                response = await attempt
                assert response.status_code == 403 and "belongs to another client" in response.text
            twice = [stranger.get("/gradio_api/queue/data?session_hash=mine&session_hash=v1ct1m"),
                     stranger.get("/gradio_api/heartbeat/mine?session_hash=v1ct1m"),
                     stranger.post("/gradio_api/queue/join?session_hash=mine", json=join),
                     stranger.post("/gradio_api/queue/join", content=b'{"session_hash": "mine", "data": [], '
                                   b'"session_hash": "v1ct1m"}'),
                     stranger.post("/gradio_api/queue/join", json={"data": []}),
                     stranger.get("/config?session_hash=v1ct1m")]
            for attempt in twice:
                response = await attempt
                assert response.status_code in (400, 403) and "\n" not in response.text, response.text
            assert (await stranger.get("/gradio_api/queue/data?session_hash=mine&session_hash=v1ct1m")).text == \
                "a parameter is given twice"
            for closed in ("/gradio_api/call/run", "/gradio_api/deep_link?session_hash=v1ct1m", "/nowhere"):
                response = await stranger.get(closed)
                assert response.status_code == 404 and response.text == "this page has no such address"
            assert (await stranger.get("/?deep_link=abc")).status_code == 400
            for path in (f"{tmp_path}/g/deep_links/abc/state.json", "http://example.com/x", f"{tmp_path}/other"):
                refused = await stranger.get(f"/gradio_api/file={path}")  # a file of the upload folder only
                assert (refused.status_code, refused.text) == (404, "this page has no such file")
            assert (await owner.get("/gradio_api/queue/data", params={"session_hash": "v1ct1m"})).status_code == 200
            stop = sessions.begin("v1ct1m", time.monotonic())  # a job of the victim's runs
            await stranger.post("/gradio_api/cancel", json={"session_hash": "v1ct1m", "event_id": "e", "fn_index": 1})
            assert not stop()
            await owner.post("/gradio_api/cancel", json={"session_hash": "v1ct1m", "event_id": "e", "fn_index": 1})
            assert stop()  # it stops at its next chunk
            sessions.end("v1ct1m")

            async def body():
                yield b"x"
            chunked = await stranger.post("/gradio_api/upload", content=body())
            assert chunked.status_code == 411
            mine = await stranger.post("/gradio_api/upload?upload_id=u1", content=b"x" * 3000)
            assert mine.status_code == 200
            assert (await owner.get("/gradio_api/upload_progress?upload_id=u1")).status_code == 403
            again = await stranger.post("/gradio_api/upload", content=b"x" * 3000)  # 6000 > its 5000
            assert again.status_code == 507 and again.text.startswith("this client's uploads would take 0.00572 MB")
            assert (await owner.post("/gradio_api/upload", content=b"x" * 4000)).status_code == 200  # its own quota
            async with httpx.AsyncClient(transport=transport, base_url="http://page") as third:
                full = await third.post("/gradio_api/upload", content=b"x" * 3500)  # the folder: 7000 + 3500 > 10000
            assert full.status_code == 507 and full.text == "the page's disk is full; try again later"

    anyio.run(requests)
    assert seen == ["/", "/", "/gradio_api/queue/join", "/gradio_api/queue/data", "/gradio_api/cancel",
                    "/gradio_api/upload", "/gradio_api/upload"]
    assert sessions.ledger.total == 7000


def test_should_stop_ends_a_song_between_chunks_and_leaves_no_stem(tmp_path, small_model):
    from asteroid_unet.files import Cancelled, separate_file as drive_file

    song = tmp_path / "song.wav"
    sf.write(str(song), 0.1 * np.random.default_rng(0).standard_normal((8 * 8000, 2)).astype(np.float32), 8000)
    asked = []

    def should_stop():  # a cancel that arrives during the first chunk
        asked.append(True)
        return len(asked) > 1

    with pytest.raises(Cancelled):
        drive_file(song, tmp_path / "out", small_model, should_stop=should_stop, chunk_seconds=2)
    assert len(asked) == 2 and not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert drive_file(song, tmp_path / "out", small_model, should_stop=lambda: False, chunk_seconds=2)  # and runs
