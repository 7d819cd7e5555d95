"""Checks of `retired` and `renamed_from` (units, skills, assignment rules). Input: the policy
files that passed their schema. Output: problems, each at its YAML node.

What is in service refers to nothing retired (a rule's target unit and skills, a unit's parent);
a rename names an id that is no longer declared, and each old id is renamed once.
"""

from __future__ import annotations

from typing import Any

from engine.policy.load import PolicyFile
from engine.policy.problems import Problem

# (file kind, list, label) of what can be retired or renamed (units, skills, rules)
LIFECYCLE_KINDS = (("units", "units", "unit"), ("skills", "skills", "skill"), ("assignment_rules", "rules", "rule"))


def check_lifecycle(pieces: dict[str, Any], files: dict[str, PolicyFile]) -> list[Problem]:
    """`retired` and `renamed_from`: what is in service refers to nothing retired; a rename
    names an id that is no longer declared, and one id is renamed once."""
    problems: list[Problem] = []
    for kind, list_key, label in LIFECYCLE_KINDS:
        if kind not in files:
            continue
        f = files[kind]
        declared = {item["id"] for item in f.spec[list_key]}
        renamed: dict[str, int] = {}
        for i, item in enumerate(f.spec[list_key]):
            old = item.get("renamed_from")
            if old is None:
                continue
            if old in declared:
                problems.append(f.problem((list_key, i, "renamed_from"),
                                          f"{label} {item['id']!r} is renamed from {old!r}, which is still declared; "
                                          f"a renamed {label} keeps only its new id"))
            elif old in renamed:
                problems.append(f.problem((list_key, i, "renamed_from"),
                                          f"{old!r} is renamed twice (first at index {renamed[old]})"))
            else:
                renamed[old] = i
    retired_units = {u["id"] for u in files["units"].spec["units"] if u.get("retired")} if "units" in files else set()
    retired_skills = ({s["id"] for s in files["skills"].spec["skills"] if s.get("retired")}
                      if "skills" in files else set())
    if "units" in files:
        f = files["units"]
        for i, unit in enumerate(f.spec["units"]):
            if not unit.get("retired") and unit.get("parent") in retired_units:
                problems.append(f.problem(("units", i, "parent"),
                                          f"unit {unit['id']!r} is in service under the retired unit "
                                          f"{unit['parent']!r}; retire it too, or move it under a unit in service"))
    if "assignment_rules" in files:
        f = files["assignment_rules"]
        for i, rule in enumerate(f.spec["rules"]):
            if rule.get("retired"):
                continue
            if rule["target"]["unit"] in retired_units:
                problems.append(f.problem(("rules", i, "target", "unit"),
                                          f"rule {rule['id']!r} targets the retired unit {rule['target']['unit']!r}; "
                                          f"retire the rule too, or target a unit in service"))
            for j, skill in enumerate(rule.get("match", {}).get("skills_any", ())):
                if skill in retired_skills:
                    problems.append(f.problem(("rules", i, "match", "skills_any", j),
                                              f"rule {rule['id']!r} matches the retired skill {skill!r}; "
                                              f"retire the rule too, or drop the skill from it"))
    return problems
