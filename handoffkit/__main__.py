"""``python -m handoffkit`` works exactly like the ``handoffkit`` console script."""

from handoffkit.cli import main

main()
