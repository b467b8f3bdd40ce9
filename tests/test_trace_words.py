"""A step in words (``attrib.trace.step_parts`` / ``step_words``): the reports, the evidence and ``attrib traces show``
word a step from one builder, so a tool call reads the same in all of them."""

from __future__ import annotations

from rich.console import Console

from attrib.trace import Step, ToolCall, ToolResult, Trace, step_parts, step_words


def test_step_words_reads_a_step_as_traces_show_does() -> None:
    """A step that only calls a tool has no content: reports quoted it as "" while `attrib traces show` printed the
    call. ``step_words`` is that wording on one line; cut short, a tool step keeps room for what came back."""
    call = Step(index=1, agent="DataAgent", content="",
                tool_calls=(ToolCall(name="get_stock", arguments='{"sku": "W-7"}', id="c1"),))
    assert step_words(call) == '→ get_stock({"sku": "W-7"})'
    said = Step(index=1, agent="a", content="Checking\n  stock.", tool_calls=call.tool_calls)
    assert step_words(said) == 'Checking stock. → get_stock({"sku": "W-7"})'
    answer = Step(index=2, agent="get_stock", role="tool", content="140 on hand", tool_calls=call.tool_calls,
                  tool_results=(ToolResult(content="140 on hand", call_id="c1"),))
    assert step_words(answer) == '→ get_stock({"sku": "W-7"}) ← 140 on hand'
    long = Step(index=2, agent="t", role="tool", content="error: slot unavailable",
                tool_calls=(ToolCall(name="book", arguments='{"id": 17, "party_size": 4, "day": "Friday"}'),),
                tool_results=(ToolResult(content="error: slot unavailable", is_error=True),))
    assert step_words(long, 60) == '→ book({"id": 17, "party_s…) ← error: slot unavailable'
    assert len(step_words(long, 30)) == 30
    plain = Step(index=0, agent="A", content="The rate is 7.25.")
    assert step_words(plain) == "The rate is 7.25."


def test_traces_show_styles_the_same_parts() -> None:
    """``traces show`` lays the parts out one per line (a call bold, a failed result red); two results of a tool step
    without its call ran together as "← a← b"."""
    from attrib.cli.traces import render, view_of

    two = Step(index=1, agent="runner", role="tool", content="",
               tool_results=(ToolResult(content="ok"), ToolResult(content="boom", is_error=True)))
    assert step_parts(two) == [("result", "← ok"), ("error", "← boom")]
    calls = Step(index=0, agent="planner", content="", tool_calls=(ToolCall(name="a", arguments="1"),
                                                                   ToolCall(name="b", arguments="2")))
    assert step_parts(calls) == [("call", "→ a(1)"), ("call", "→ b(2)")]
    console = Console(width=120, record=True)
    console.print(render(view_of(Trace(id="t", source_format="attrib", steps=(calls, two)))))
    out = console.export_text()
    for line in ("→ a(1)", "→ b(2)", "← ok", "← boom"):
        assert any(row.rstrip().endswith(line) for row in out.splitlines()), (line, out)
