"""Step features on hand-made runs: the code step whose execution comes back empty, the first failing code,
and the step that concludes after an empty result are flagged; nothing fires where it should not."""

from attrib.features.steps import INDEX, step_features
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
