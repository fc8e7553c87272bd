"""prometheus-adapter's metricsQuery templating, for queries it would send for one object.

As the adapter's pkg/naming/metrics_query.go builds them: `<<.Series>>` is the series name,
`<<.LabelMatchers>>` the namespace matcher and the resource label's matcher (`="name"` for
one object, `=~"a|b"` for several), `<<.GroupBy>>` the resource label. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def fill(template: str, *, series: str, namespace: str, resource_label: str, names: Sequence[str]) -> str:
    matcher = (
        f'{resource_label}="{names[0]}"' if len(names) == 1 else f'{resource_label}=~"{"|".join(names)}"'
    )
    return (
        template.replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", f'namespace="{namespace}",{matcher}')
        .replace("<<.GroupBy>>", resource_label)
    )


def query_for(rule: Mapping[str, Any], *, namespace: str, names: Sequence[str]) -> str:
    """The query the adapter sends for objects `names` of the rule's (non-namespace) resource."""
    series = rule["name"]["matches"].strip("^$")
    (resource_label,) = [label for label in rule["resources"]["overrides"] if label != "namespace"]
    return fill(
        rule["metricsQuery"], series=series, namespace=namespace, resource_label=resource_label, names=names
    )
