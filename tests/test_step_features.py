"""Step features on hand-made runs: the code step whose execution comes back empty, the first failing code,
and the step that concludes after an empty result are flagged; nothing fires where it should not."""

from pathlib import Path

from attrib.features.steps import INDEX, step_features
from attrib.features.text import numbers
from attrib.readers import load_trace
from attrib.trace import Step, Trace


def _run(*turns: tuple[str, str]) -> Trace:
    steps = tuple(Step(index=i, agent=a, content=c) for i, (a, c) in enumerate(turns))
    return Trace(id="t", source_format="chat", steps=steps, task="What is the population of Greenland in 2020?")


def test_negative_tool_result_flags_the_code_that_produced_it_and_the_conclusion_after_it():
    t = _run(
        ("Planner", "Plan: scrape the Wikipedia infobox for Greenland."),
        ("Coder", "```python\nimport pandas as pd\nprint(scrape('Greenland'))\n```"),
        ("Computer_terminal", "exitcode: 0 (execution succeeded)\nCode output: []"),
        ("Coder", "```python\nimport requests\nprint(get('Greenland'))\n```"),
        ("Computer_terminal", "exitcode: 1 (execution failed)\nTraceback (most recent call last): KeyError"),
        ("Verifier", "Therefore the answer is 56,583, verified."),
    )
    X = step_features(t)
    col = lambda name: X[:, INDEX[name]].tolist()  # noqa: E731
    assert col("next_tool_negative") == [0, 1, 0, 0, 0, 0]
    assert col("first_next_tool_negative") == [0, 1, 0, 0, 0, 0]
    assert col("first_next_tool_error") == [0, 0, 0, 1, 0, 0]  # the failing run is step 3's code, not step 1's
    assert col("first_code_step") == [0, 1, 0, 0, 0, 0]
    assert col("prev_tool_negative") == [0, 0, 0, 1, 0, 0]
    assert col("concludes_after_negative") == [0, 0, 0, 0, 0, 1]


def test_successful_output_with_numbers_is_not_negative():
    t = _run(
        ("Coder", "```python\nprint(population())\n```"),
        ("Computer_terminal", "exitcode: 0 (execution succeeded)\nCode output: 56,583"),
        ("Verifier", "Therefore the answer is 56,583."),
    )
    X = step_features(t)
    for name in ("next_tool_negative", "first_next_tool_negative", "prev_tool_negative", "concludes_after_negative",
                 "first_next_tool_error"):
        assert X[:, INDEX[name]].sum() == 0, name
    assert X[0, INDEX["first_code_step"]] == 1


def test_a_value_written_with_a_magnitude_word_is_the_same_value():
    assert {"12", "12000000"} <= numbers("about 12 million people")
    assert "2100000000" in numbers("2.1 billion") and "3000" in numbers("3 thousand")
    assert {"3080000", "2000000000", "5000"} <= numbers("$3.08M, €2bn and £5k")
    assert numbers("10 m tall, 5 km away") == {"10"}  # a bare m / k suffix is a unit unless it is money


def test_final_value_first_finds_the_step_that_wrote_it_out_in_words(bundled: Path):
    # the researcher says "13 million", the writer answers "13,000,000": the value enters at the researcher
    X = step_features(load_trace(bundled / "chat_langgraph.json"))
    assert X[:, INDEX["final_value_first"]].tolist() == [0, 0, 0, 1, 0]
