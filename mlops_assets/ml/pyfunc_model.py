"""The region model as an MLflow pyfunc, logged *from code*: MLflow stores this file and the
model's JSON and NPZ artifacts, and nothing is pickled.

``mlflow.pyfunc.load_model(uri).predict(features)`` takes a ``features`` frame (one row per
store x product x week, as the ``features`` asset holds them) and returns the forecast per
row: the columns of ``ForecastModel.predict``.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from mlops_assets.ml.ensemble import ForecastModel


class DemandForecastPyfunc(PythonModel):
    model: ForecastModel | None = None

    def load_context(self, context):
        self.model = ForecastModel.load(context.artifacts["model"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)


mlflow.models.set_model(DemandForecastPyfunc())
