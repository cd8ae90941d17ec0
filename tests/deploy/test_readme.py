"""The README's generated parts stay equal to the code they describe."""

from generation.prompt import prompt_table_markdown
from tests.conftest import ROOT


def test_the_readme_holds_the_prompt_table_of_the_code():
    assert prompt_table_markdown() in (ROOT / "README.md").read_text()
