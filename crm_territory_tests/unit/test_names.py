"""Name normalisation (crm_territory.logic.matching.names): the rules in the module docstring, one by one.

Expected values are written from the documented steps: accents folded, lower case, "&" -> "and",
dots and apostrophes dropped, other punctuation a space, abbreviations spelled out, a leading "the"
and trailing legal forms removed; and the four unmatchable reasons (first applicable wins).
"""

import pandas as pd
import pytest

from crm_territory.logic.matching.names import EMPTY_NAME, MAX_NAME_CHARACTERS, NOT_LATIN, TOO_LONG, TOO_SHORT, normalise_names


def norm(*names) -> list:
    """The normalised names of ``names``, in order (None where unmatchable)."""
    return normalise_names(pd.Series(list(names), dtype=object)).name.tolist()


def one(name):
    """The normalised form of one name."""
    return norm(name)[0]


def reason(name):
    """Why one name is unmatchable (None: it can be matched)."""
    return normalise_names(pd.Series([name], dtype=object)).unmatchable.iloc[0]


# --- case, whitespace, punctuation -------------------------------------------------------------


def test_case_is_folded_to_lower():
    assert norm("ATLAS CAPITAL", "atlas capital", "Atlas Capital", "aTlAs CaPiTaL") == ["atlas capital"] * 4


def test_whitespace_is_trimmed_and_collapsed_tabs_and_newlines_included():
    assert norm("  Atlas   Capital  ", "Atlas\tCapital", "Atlas\nCapital", "\u00a0Atlas\u00a0Capital") == ["atlas capital"] * 4


def test_punctuation_becomes_a_space_and_never_glues_or_doubles_words():
    # commas, hyphens, slashes, parentheses: word separators
    assert (
        norm("Atlas-Capital", "Atlas/Capital", "Atlas, Capital", "(Atlas) Capital", "Atlas -- Capital!") == ["atlas capital"] * 5
    )


def test_dots_and_apostrophes_are_deleted_not_spaced():
    # so initials and possessives stay one word
    assert one("A.B.C. Partners") == "abc partners"
    assert one("O'Neil Partners") == "oneil partners"
    assert one("Smith’s Advisors") == "smiths advisors"  # typographic apostrophe, like the ASCII one


def test_typographic_punctuation_is_treated_like_its_ascii_role():
    assert one("Atlas–Capital “Partners”") == "atlas capital partners"


# --- accents -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Café Capital", "cafe capital"),
        ("Ørsted Energy", "orsted energy"),
        ("Müller Partners", "muller partners"),
        ("MÜLLER PARTNERS", "muller partners"),
        ("Straße Holdings", "strasse holdings"),
        ("Æther Group", "aether group"),
        ("Łódź Capital", "lodz capital"),
        ("Crème Brûlée Partners", "creme brulee partners"),
    ],
)
def test_accents_are_folded_to_their_base_letter(raw, expected):
    assert one(raw) == expected


def test_accented_and_plain_spellings_normalise_alike():
    assert one("Café Müller Ørsted") == one("CAFE MULLER ORSTED") == "cafe muller orsted"


# --- "&" and "and" -------------------------------------------------------------------------------


def test_ampersand_reads_as_and_with_or_without_spaces():
    assert norm("Smith & Jones", "Smith&Jones", "Smith and Jones", "SMITH AND JONES") == ["smith and jones"] * 4


# --- legal forms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "Atlas Capital",
        "Atlas Capital LLC",
        "Atlas Capital, LLC",
        "Atlas Capital, L.L.C.",
        "Atlas Capital Inc.",
        "Atlas Capital, Inc",
        "Atlas Capital Incorporated",
        "Atlas Capital Ltd.",
        "Atlas Capital Limited",
        "Atlas Capital Corp.",
        "Atlas Capital Corporation",
        "Atlas Capital, Inc., LLC",
        "Atlas Capital Company",
        "Atlas Capital & Co.",
        "Atlas Capital and Co",
        "Atlas Capital Co., LLC",
        "Atlas Capital & Co., L.L.C.",
        "Atlas Capital LLC & Co.",  # the same legal forms in another order
        "Atlas Capital L.P.",
        "Atlas Capital GmbH",
        "Atlas Capital PLC",
    ],
)
def test_trailing_legal_forms_are_removed(raw):
    assert one(raw) == "atlas capital"


def test_a_legal_form_word_inside_a_name_is_kept():
    # dropped at the end only: "Limited" / "Inc" here are part of the name
    assert one("Limited Brands Partners") == "limited brands partners"
    assert one("Inc Magazine Group LLC") == "inc magazine group"


def test_co_is_spelled_company_and_kept_inside_a_name():
    assert norm("Co-Investment Partners", "Company Investment Partners") == ["company investment partners"] * 2


@pytest.mark.parametrize(
    "raw", ["Atlas Capital Compnay", "Atlas Capital Limted", "Atlas Capital Incorporatd", "Atlas Capital Corportion"]
)
def test_a_misspelt_long_legal_form_at_the_end_is_removed_too(raw):
    # one edit from a legal form of six letters or more: left in, the typo would read as an extra word
    assert one(raw) == "atlas capital"


def test_a_short_word_near_a_legal_form_is_kept():
    # "Inv" is not "Inc": only legal forms of six letters or more are forgiven a typo
    assert one("Atlas Capital Inv") == "atlas capital inv"


def test_and_inside_a_name_is_kept_but_a_dangling_and_is_dropped():
    assert one("Smith & Jones LLC") == "smith and jones"
    assert one("Smith & Co.") == "smith"  # "& Co." leaves a dangling "and"


# --- abbreviations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Atlas Capital Ptnrs", "atlas capital partners"),
        ("Atlas Capital Ptnrs.", "atlas capital partners"),
        ("Atlas Capital Partner", "atlas capital partners"),
        ("Beacon Wealth Mgmt", "beacon wealth management"),
        ("Beacon Wealth Mgmt.", "beacon wealth management"),
        ("Orion Int'l Advisors", "orion international advisors"),
        ("Orion Intl Advisers", "orion international advisors"),
        ("Crescent Advisory Grp", "crescent advisory group"),
        ("Redwood Hldgs", "redwood holdings"),
        ("Summit Finl Svcs", "summit financial services"),
        ("Harbor Assocs", "harbor associates"),
        ("Mason Bros", "mason brothers"),
        ("Lincoln Centre", "lincoln center"),
    ],
)
def test_abbreviations_are_spelled_out(raw, expected):
    assert one(raw) == expected


def test_abbreviations_are_whole_words_only():
    # "mgmt" inside a longer word is not an abbreviation
    assert one("Mgmtco Partners") == "mgmtco partners"


def test_the_documented_example():
    assert one("ATLAS CAPITAL PTNRS., L.L.C.") == "atlas capital partners"


# --- "the" -------------------------------------------------------------------------------------


def test_a_leading_the_is_removed():
    assert norm("The Atlas Group", "the atlas group", "THE ATLAS GROUP", "Atlas Group") == ["atlas group"] * 4


def test_the_inside_a_name_is_kept():
    assert one("Atlas The Group") == "atlas the group"


# --- unmatchable names -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "", "   ", "\t\n"])
def test_empty_names_are_unmatchable(raw):
    assert reason(raw) == EMPTY_NAME


@pytest.mark.parametrize("raw", ["A", "x", "7", "A.", "-", "&"])
def test_names_with_fewer_than_two_letters_or_digits_are_unmatchable(raw):
    assert reason(raw) == TOO_SHORT


@pytest.mark.parametrize("raw", ["Inc.", "LLC", "L.L.C.", "Ltd", "Corp.", "Inc., LLC", "& Co.", "Co"])
def test_a_name_that_is_only_a_legal_form_is_unmatchable(raw):
    assert reason(raw) == TOO_SHORT


def test_two_letters_are_enough():
    assert reason("AB") is None and one("AB") == "ab"
    assert reason("3M") is None and one("3M") == "3m"


@pytest.mark.parametrize("raw", ["北京资本管理有限公司", "Москва Капитал", "Ελληνική Τράπεζα", "Atlas 资本"])
def test_names_in_another_script_are_unmatchable(raw):
    # Chinese, Cyrillic, Greek; a Latin word beside them does not make the name comparable
    assert reason(raw) == NOT_LATIN


def test_very_long_names_are_unmatchable_and_the_limit_is_inclusive():
    at_limit = "x" * MAX_NAME_CHARACTERS
    over = "x" * (MAX_NAME_CHARACTERS + 1)
    assert reason(at_limit) is None
    assert reason(over) == TOO_LONG
    # surrounding whitespace does not count towards the length
    assert reason("   " + at_limit + "   ") is None


def test_a_note_pasted_into_the_name_field_is_too_long():
    note = "Atlas Capital Partners - " + "client asked us to call back next quarter about the mandate; " * 4
    assert len(note) > MAX_NAME_CHARACTERS
    assert reason(note) == TOO_LONG


def test_first_applicable_reason_is_reported():
    # a very long Cyrillic name: too long is checked before the script
    assert reason("Ж" * (MAX_NAME_CHARACTERS + 1)) == TOO_LONG


def test_unmatchable_rows_have_no_name_or_words_and_matchable_rows_no_reason():
    out = normalise_names(pd.Series(["Atlas Capital", None, "Inc.", "Москва"], dtype=object))
    assert out.unmatchable.isna().tolist() == [True, False, False, False]
    for column in (out.name, out.first_word, out.other_words):
        assert column.iloc[0] is not None
        assert column.iloc[1:].isna().all()


def test_accented_latin_names_are_not_flagged_as_another_script():
    assert [reason(n) for n in ["Café", "Ørsted", "Müller", "Straße"]] == [None] * 4


# --- index and words ---------------------------------------------------------------------------


def test_the_index_is_preserved_on_every_output():
    names = pd.Series(["Atlas Capital", None, "Beacon"], index=[42, 7, 1000], dtype=object)
    out = normalise_names(names)
    for column in (out.name, out.first_word, out.other_words, out.unmatchable):
        assert column.index.tolist() == [42, 7, 1000]
    assert out.name.loc[42] == "atlas capital" and out.name.loc[1000] == "beacon"
    assert out.unmatchable.loc[7] == EMPTY_NAME


def test_a_string_index_is_preserved():
    out = normalise_names(pd.Series({"crm_api:1": "Atlas Capital", "csv_drop:9": "Beacon"}))
    assert out.name.to_dict() == {"crm_api:1": "atlas capital", "csv_drop:9": "beacon"}


def test_first_word_and_other_words_split_the_normalised_name():
    out = normalise_names(pd.Series(["The Atlas Capital Ptnrs, LLC", "Beacon Inc.", "Smith & Jones"], dtype=object))
    assert out.first_word.tolist() == ["atlas", "beacon", "smith"]
    assert out.other_words.tolist() == ["capital partners", "", "and jones"]
    # first word + other words give back the name
    for name, first, rest in zip(out.name, out.first_word, out.other_words):
        assert name == (first + " " + rest if rest else first)


def test_an_empty_series_gives_empty_outputs():
    out = normalise_names(pd.Series([], dtype=object))
    assert len(out.name) == len(out.first_word) == len(out.other_words) == len(out.unmatchable) == 0


def test_mixed_ascii_and_unicode_rows_in_one_call_are_each_normalised():
    # the Unicode path runs only on non-ASCII rows: the ASCII rows around them must be untouched
    names = ["Atlas Capital", "Café Müller", "Beacon Wealth Mgmt", "Ørsted & Co.", "Москва", "Crescent"]
    assert norm(*names) == ["atlas capital", "cafe muller", "beacon wealth management", "orsted", None, "crescent"]
