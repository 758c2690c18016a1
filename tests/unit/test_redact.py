"""Masking of registered secret values in text the tool prints, logs or emits as JSON."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

from provision.secrets import MASK, REDACTOR, Redactor


def test_registered_values_are_masked_everywhere_in_the_text() -> None:
    redactor = Redactor()
    redactor.register("hunter2-long")
    assert redactor.mask("pw=hunter2-long; again hunter2-long.") == f"pw={MASK}; again {MASK}."
    assert redactor.mask("nothing secret here") == "nothing secret here"


def test_nothing_registered_leaves_text_alone() -> None:
    assert Redactor().mask("any text at all") == "any text at all"


def test_values_shorter_than_four_characters_are_not_masked() -> None:
    redactor = Redactor()
    for short in ("", "a", "ab", "abc"):
        redactor.register(short)
    assert redactor.mask("a b abc abcd") == "a b abc abcd"
    redactor.register("abcd")
    assert redactor.mask("a b abc abcd") == f"a b abc {MASK}"


def test_longer_value_containing_a_shorter_one_is_masked_whole() -> None:
    redactor = Redactor()
    redactor.register("pass")
    redactor.register("password-1234")
    assert redactor.mask("password-1234 and pass") == f"{MASK} and {MASK}"


def test_regex_characters_in_values_are_literal() -> None:
    redactor = Redactor()
    redactor.register("a.b*c(d)[e]$")
    assert redactor.mask("xa.b*c(d)[e]$y axbbbc(d)[e]") == f"x{MASK}y axbbbc(d)[e]"


def test_json_escaped_and_url_quoted_forms_are_masked() -> None:
    redactor = Redactor()
    value = 'q"uo\\te/ü ?&'
    redactor.register(value)
    document = json.dumps({"msg": f"password {value}"})
    document_ascii = json.dumps({"msg": value}, ensure_ascii=True)
    assert value not in redactor.mask(document)
    assert json.loads(redactor.mask(document)) == {"msg": f"password {MASK}"}
    assert json.loads(redactor.mask(document_ascii)) == {"msg": MASK}
    assert redactor.mask(f"ssh://dvc:{quote(value, safe='')}@host/") == f"ssh://dvc:{MASK}@host/"


def test_multiline_values_are_masked() -> None:
    redactor = Redactor()
    redactor.register("line one\nline two")
    assert redactor.mask("before line one\nline two after") == f"before {MASK} after"


def test_registering_twice_changes_nothing() -> None:
    redactor = Redactor()
    redactor.register("same-value")
    redactor.register("same-value")
    assert redactor.mask("same-value") == MASK


def test_concurrent_registration_loses_no_value() -> None:
    redactor = Redactor()
    values = [f"value-number-{n:03d}" for n in range(200)]

    def register(chunk: list[str]) -> None:
        for value in chunk:
            redactor.register(value)
            redactor.mask(value)

    threads = [threading.Thread(target=register, args=(values[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redactor.mask(" ".join(values)) == " ".join([MASK] * len(values))


def test_process_wide_instance_is_a_redactor() -> None:
    assert isinstance(REDACTOR, Redactor)
    REDACTOR.register("process-wide-secret")
    assert REDACTOR.mask("x process-wide-secret") == f"x {MASK}"
