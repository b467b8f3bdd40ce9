"""The information-flow graph on a hand-made chain A -> B -> C where A injects the error."""

from attrib.methods import analyze
from attrib.methods.flow_graph import blame_path, build_graph, failure_node, invert, path_hops
from attrib.trace import Step, ToolCall, ToolResult, Trace


def chain() -> Trace:
    steps = (
        Step(index=0, agent="A", content="The measured density is 42.7 kg/m3 (I recall it from memory)."),
        Step(index=1, agent="B", content="Using A's density 42.7 we get a mass of 85.4 kg for 2 m3."),
        Step(index=2, agent="C", content="FINAL ANSWER: 85.4"),
    )
    return Trace(id="chain", source_format="attrib", steps=steps, task="What is the mass of 2 m3?")


def test_edges_follow_consumption_forward_only():
    g = build_graph(chain())
    assert "content" in g.edges[0, 1]["kinds"]  # B quotes A's number
    assert "content" in g.edges[1, 2]["kinds"]  # C reports B's result
    assert not g.has_edge(0, 2) or "content" not in g.edges[0, 2]["kinds"]  # C never quotes 42.7
    assert all(i < j for i, j in g.edges)  # a DAG in time order


def test_inversion_blames_the_origin():
    t = chain()
    g = build_graph(t)
    assert failure_node(t) == 2
    mass = invert(g, 2)
    assert abs(sum(mass.values()) - 1) < 1e-9
    assert max(mass, key=mass.get) == 0
    a = analyze(t, "flow-graph")
    assert (a.step, a.agent) == (0, "A")
    assert a.evidence["graph_path"][0] == 0 and a.evidence["graph_path"][-1] == 2


def test_tool_call_and_handoff_edges():
    steps = (
        Step(index=0, agent="planner", content="coder, please compute the total."),
        Step(index=1, agent="coder", content="calling the calculator",
             tool_calls=(ToolCall(name="calc", arguments="2+2", id="c1"),)),
        Step(index=2, agent="tool", content="4", role="tool", tool_results=(ToolResult(content="4", call_id="c1"),)),
    )
    g = build_graph(Trace(id="t", source_format="attrib", steps=steps))
    assert "handoff" in g.edges[0, 1]["kinds"]
    assert "tool" in g.edges[1, 2]["kinds"]


def test_the_evidence_path_is_the_strongest_not_the_longest():
    """A value reused from step 0 at the failure step is the path to show, not the chain of every turn between
    them (the heaviest-weight path used before ran through all of a long run's turns)."""
    steps = [Step(index=0, agent="A", content="The rate is 7.25 per unit.")]
    steps += [Step(index=i, agent="B" if i % 2 else "C", content=f"Still checking page {i}.") for i in range(1, 30)]
    steps.append(Step(index=30, agent="C", content="FINAL ANSWER: 7.25"))
    t = Trace(id="long", source_format="attrib", steps=tuple(steps))
    g = build_graph(t)
    path = blame_path(g, 0, 30)
    assert path == [0, 30]
    assert path_hops(g, path) == ["reuses 7.25"]
    assert path_hops(g, [0, 1, 2]) == ["next turn", "next turn"]


def test_a_verdict_names_what_each_hop_of_its_path_carries():
    a = analyze(chain(), "flow-graph")
    assert a.evidence["graph_path"] == [0, 1, 2]
    assert a.evidence["graph_path_hops"] == ["reuses 42.7", "reuses 85.4"]
    assert "0 →(reuses 42.7) 1 →(reuses 85.4) 2" in a.to_markdown(chain())


def test_no_hop_is_claimed_where_the_output_does_not_reach_the_failure():
    """A step whose output never reaches the failure has no path (it used to get [step, failure], a hop that is
    not in the graph); the verdict's words say which case it is."""
    from attrib.methods.flow_graph import flow_words as flow_text

    g = build_graph(chain())
    g.remove_edges_from(list(g.out_edges(0)))
    assert blame_path(g, 0, 2) == [0]
    assert blame_path(g, 2, 2) == [2]
    assert flow_text([2], [], 2) == "step 2 is itself where the failure shows"
    assert flow_text([0], [], 2) == "no path: its output does not reach step 2 in the flow graph"
    assert flow_text([0, 1, 2], ["tool", "next turn"], 2) == "0 →(tool) 1 →(next turn) 2"
    named = flow_text([0], [], 2, label=lambda i: f"{i} ({'ABC'[i]})")  # the app names steps with their agents
    assert named == "no path: its output does not reach step 2 (C) in the flow graph"


def test_inversion_does_not_depend_on_the_order_edges_were_added():
    """Edges added from a set (the shared tokens of two steps) come in hash order, which varies between processes:
    the masses differed in their last digits between two runs of the same trace (PYTHONHASHSEED), so stored verdicts
    were not bit-identical."""
    import itertools

    import networkx as nx

    from attrib.methods.flow_graph import invert

    edges = [(0, 5, 0.1), (1, 5, 0.7), (2, 5, 0.2), (3, 5, 1.3), (4, 5, 0.3), (0, 1, 0.6), (0, 3, 0.9), (2, 3, 0.4)]
    results = set()
    for order in itertools.permutations(edges[:5]):
        g = nx.DiGraph()
        g.add_nodes_from(range(6))
        for i, j, w in [*order, *edges[5:]]:
            g.add_edge(i, j, weight=w, kinds={"content"})
        results.add(tuple(invert(g, 5).items()))
    assert len(results) == 1


def test_a_hand_off_is_found_by_the_whole_name_whatever_its_shape():
    """The hand-off search first checks that a name's first word is a word of the step (a speed-up: a 5,200-step
    run of 192 agents spent a minute in name searches); it must find what the plain whole-name search finds."""
    from attrib.methods.flow_graph import build_graph
    from attrib.trace import Step, Trace

    names = ["Web Surfer", "data_expert", "Agent-7", "Planner", "(ops) bot", "Expert", "Coder"]
    said = "Over to you, web surfer. DATA_EXPERT please check; agent-7: run it. The planners met. Ask (ops) bot " \
           "now. Not Data_Expert alone: the Expert too. Not WebSurfer, nor Coders."
    steps = [Step(index=0, agent="host", content=said)]
    steps += [Step(index=1 + i, agent=a, content="ok") for i, a in enumerate(names)]
    g = build_graph(Trace(id="h", source_format="attrib", steps=tuple(steps)))
    handed = sorted(g.nodes[v]["agent"] for u, v, d in g.edges(data=True) if "handoff" in d["kinds"])
    # "(ops) bot" starts with no word: \b( never matches after a space, so the plain search misses it too
    assert handed == sorted(["Web Surfer", "data_expert", "Agent-7", "Expert"]), handed
