"""The brainstorm output parser: the shapes small models write, and no crash on any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.stages.task_parser import parse_tasks
from engine.stages.templates import Demo, brainstorm_prefix, brainstorm_prompt, requirements


def _kept(text: str, truncated: bool = False) -> list[tuple[str, str, str]]:
    return [(t.instruction, t.input, t.task_type) for t in parse_tasks(text, truncated) if not t.problem]


def test_the_template_format_round_trips() -> None:
    demos = [
        Demo("Explain how statins lower LDL.", "", "", "explanation"),
        Demo("Is aspirin an anticoagulant? Answer yes or no.", "A note about aspirin.\nSecond line.", "", "yes_no"),
    ]
    prompt = brainstorm_prompt("biomedicine", demos, requirements("biomedicine", ["yes_no"], []))
    body = prompt[prompt.index("Task 1") :]
    assert _kept(body) == [
        ("Explain how statins lower LDL.", "", "explanation"),
        ("Is aspirin an anticoagulant? Answer yes or no.", "A note about aspirin.\nSecond line.", "yes_no"),
    ]


def test_continuation_after_the_prompt_prefix() -> None:
    text = brainstorm_prefix(3) + " summarization\nInstruction: Summarize the abstract.\nInput: Some abstract text."
    assert _kept(text) == [("Summarize the abstract.", "Some abstract text.", "summarization")]


def test_variants_small_models_write() -> None:
    text = (
        "### Task 5\n**Instruction:** Name the enzyme that statins inhibit.\n**Input:** <noinput>\n"
        "Output: HMG-CoA reductase\n\n"
        "Task 6: Explain why aspirin is stopped before surgery.\n"
        "**Task 7**\nInstructions: Choose the right answer.\nInput: (a) one (b) two\nAnswer: (a)\n"
        "Example 8\nType: Yes / No QA\nQuestion: Does smoking raise the risk of stroke?\nContext: N/A\n"
    )
    assert _kept(text) == [
        ("Name the enzyme that statins inhibit.", "", ""),
        ("Explain why aspirin is stopped before surgery.", "", ""),
        ("Choose the right answer.", "(a) one (b) two", ""),
        ("Does smoking raise the risk of stroke?", "", "yes_no_qa"),
    ]


def test_numbered_list_without_headers() -> None:
    assert _kept("1. Explain what an ACE inhibitor does.\n2) List three side effects of statins.") == [
        ("Explain what an ACE inhibitor does.", "", ""),
        ("List three side effects of statins.", "", ""),
    ]


def test_output_fields_end_the_input() -> None:
    text = "Task 4\nInstruction: Classify the drug.\nInput: Metformin.\nOutput: biguanide\nmore output text"
    assert _kept(text) == [("Classify the drug.", "Metformin.", "")]


def test_repeated_items_are_marked() -> None:
    text = "Task 4\nInstruction: Explain sepsis.\nTask 5\nInstruction: Explain  sepsis.\nTask 6\nInstruction: Other."
    reasons = [t.problem for t in parse_tasks(text)]
    assert reasons == ["", "repeated_in_output", ""]


def test_truncated_output_drops_the_last_task() -> None:
    text = "Task 4\nInstruction: Explain sepsis.\nTask 5\nInstruction: Explain the pathophys"
    tasks = parse_tasks(text, truncated=True)
    assert [t.problem for t in tasks] == ["", "truncated"]


def test_empty_and_fieldless_output() -> None:
    assert [t.problem for t in parse_tasks("")] == ["no_task_in_output"]
    assert [t.problem for t in parse_tasks("   \n\n")] == ["no_task_in_output"]
    assert [t.problem for t in parse_tasks("Task 4\nType: classification\nTask 5\nType: x")] == [
        "no_instruction",
        "no_instruction",
    ]


def test_repeated_field_keeps_the_first_value() -> None:
    text = "Task 4\nInstruction: First one here.\nInstruction: Second one.\nInput: a\nInput: b"
    assert _kept(text) == [("First one here.", "a", "")]


_ALPHABET = st.sampled_from(
    list("Task Instruction: Input: Type: Output: 0123456789.)#*-_<>\n\r\t\x00\x1b é中🙂 abc")
    + ["Task 5\n", "Instruction:", "Input:", "\n**Task 7**\n", "1. ", "<noinput>", "Question:"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=80).map("".join), st.booleans())
def test_fuzz_structured_garbage_never_crashes(text: str, truncated: bool) -> None:
    tasks = parse_tasks(text, truncated)
    assert tasks  # at least the reason why nothing came out
    for t in tasks:
        assert t.problem != "unparseable"
        assert isinstance(t.instruction, str) and t.instruction == t.instruction.strip()
        assert "\x00" not in t.instruction + t.input
        assert bool(t.problem) or bool(t.instruction)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.booleans())
def test_fuzz_any_text_never_crashes(text: str, truncated: bool) -> None:
    tasks = parse_tasks(text, truncated)
    assert tasks and all(t.problem != "unparseable" for t in tasks)
