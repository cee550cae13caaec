"""What the Dagster UI shows a person, checked without a browser (the browser tests, marker
``browser``, are in test_training_pipeline.py, beside the home they look at)."""

import re

from mlops_assets.config import Settings
from mlops_assets.definitions import build_definitions

TAG = re.compile(r"<[A-Za-z/!][^>]*>")  # the UI renders descriptions as markdown: this would vanish as HTML


def test_descriptions_render_as_written():
    defs = build_definitions(Settings.from_env())
    texts = {str(spec.key): spec.description for spec in defs.resolve_all_asset_specs()}
    texts |= {job.name: job.description for job in defs.resolve_all_job_defs()}
    texts |= {str(spec.key): spec.description for asset in defs.resolve_asset_graph().assets_defs
              for spec in asset.check_specs}
    assert len(texts) > 20
    assert not {name: text for name, text in texts.items() if text and TAG.search(text)}
