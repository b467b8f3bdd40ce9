"""CRAS proxy scoring on hand-written answers, and captum span attributions on the real model."""

from __future__ import annotations

import pytest

from attrib.errors import InputError
from attrib.heads.cras import DIMENSIONS, cras_score, proxy_score
from attrib.probes import conflict_suite


def _probe(family: str):
    return conflict_suite([family], n_questions=1)[0]


def test_proxy_scores_the_family_dimension(monkeypatch):
    for var in ("ATTRIB_LLM_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    p = _probe("secret")
    kept, leaked = cras_score(p, "I can't share that."), cras_score(p, "The password is TULIP.")
    assert kept.scorer == leaked.scorer == "proxy"
    assert kept.knowledge_boundary == 5 and leaked.knowledge_boundary == 1
    assert kept.role_consistency is None and kept.constraint_compliance is None
    lang = proxy_score(_probe("language"), "La capitale de la France est Paris.")
    assert lang.role_consistency == 5 and lang.goal_alignment == 5
    assert proxy_score(_probe("language"), "The capital of France is Paris.").role_consistency == 1
    empty = proxy_score(_probe("persona"), "")
    assert empty.goal_alignment == 1 and empty.overall == pytest.approx((1 + 1) / 2)
    assert set(kept.to_dict()) >= set(DIMENSIONS) | {"overall", "scorer"}


@pytest.fixture(scope="session")
def smollm():
    from attrib.models import load_model

    return load_model("smollm2-135m")


@pytest.mark.slow
def test_span_ablation_attributions_are_exact_differences(smollm):
    import torch

    from attrib.heads.attributions import probe_attributions
    from attrib.probes.run import logit_diff, metric_ids

    model, tok = smollm
    probe = next(p for p in conflict_suite(["persona"], n_questions=1) if p.condition == "user")
    a = probe_attributions(model, tok, probe, method="ablation")
    assert set(a.spans) >= {"rule", "conflict", "question", "rest"}
    # FeatureAblation = target(original) - target(span zeroed): recompute the rule span by hand
    r = probe.render(tok)
    comp, viol = metric_ids(tok, probe)
    emb = model.get_input_embeddings()(torch.tensor([r.input_ids])).detach().clone()
    lo, hi = r.spans["rule"]
    emb[0, lo:hi] = 0
    with torch.no_grad():
        ablated = float(logit_diff(torch.log_softmax(model(inputs_embeds=emb).logits[0, -1].float(), -1), comp, viol))
    assert a.spans["rule"] == pytest.approx(a.target - ablated, abs=1e-3)
    with pytest.raises(InputError):
        probe_attributions(model, tok, probe, method="nope")


@pytest.mark.slow
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"method": "ig", "n_steps": 0}, "n_steps"),  # reached captum: a bare AssertionError
    ({"method": "ig", "n_steps": -3}, "n_steps"),
    ({"method": "ig", "n_steps": 2.5}, "n_steps"),
    ({"method": "ig", "n_steps": True}, "n_steps"),
    ({"method": "ablation", "n_steps": 0}, "n_steps"),
    ({"method": "shap"}, "method"),
])
def test_attribution_arguments_are_usage_errors_naming_them(smollm, kwargs, field):
    from attrib.errors import UsageError
    from attrib.heads.attributions import probe_attributions, token_attributions

    model, tok = smollm
    probe = next(p for p in conflict_suite(["persona"], n_questions=1) if p.condition == "user")
    with pytest.raises(UsageError) as err:
        probe_attributions(model, tok, probe, **kwargs)
    assert err.value.field == field and err.value.exit_code == 2
    r = probe.render(tok)
    for pad in (-1, 10**6, 1.0):  # IG's baseline token: an id of the vocabulary
        with pytest.raises(UsageError) as err:
            token_attributions(model, r.input_ids, r.spans, lambda lp: lp[:, 0], method="ig", n_steps=1, pad_id=pad)
        assert err.value.field == "pad_id"


@pytest.mark.slow
def test_integrated_gradients_with_the_fewest_steps_runs(smollm):
    from attrib.heads.attributions import probe_attributions

    model, tok = smollm
    probe = next(p for p in conflict_suite(["persona"], n_questions=1) if p.condition == "user")
    a = probe_attributions(model, tok, probe, method="ig", n_steps=1)
    assert a.method == "ig" and {"rule", "conflict"} <= set(a.spans) and len(a.tokens) == len(probe.render(tok).input_ids)


def test_llm_judge_path_over_http():
    """The LLM-judge CRAS through attrib.llm against a scripted OpenAI-shaped server: rubric sent, 1-5 kept,
    out-of-range dropped to None."""
    try:
        from tests._llm_servers import ScriptedServer
    except ImportError:  # rootdir-less import mode
        from _llm_servers import ScriptedServer

    from attrib.heads.cras import RUBRIC
    from attrib.llm import LLMConfig

    answer = ('{"goal_alignment": 4, "role_consistency": 5, "knowledge_boundary": 1, '
              '"constraint_compliance": 9, "reason": "it revealed the password"}')
    p = _probe("secret")
    with ScriptedServer([answer]) as srv:
        s = cras_score(p, "The password is TULIP.", llm=LLMConfig(base_url=srv.url, model="scripted"))
    assert s.scorer == "llm"
    assert (s.goal_alignment, s.role_consistency, s.knowledge_boundary, s.constraint_compliance) == (4, 5, 1, None)
    assert s.overall == pytest.approx(10 / 3) and "password" in s.reason
    body = srv.chat_bodies[0]
    assert body["messages"][0]["content"] == RUBRIC and p.rule in body["messages"][1]["content"]
