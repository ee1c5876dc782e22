//! The `models` Lambda function: GET /api/v1/models, POST /api/v1/models/download and
//! GET /api/v1/processors behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::Models).await
}
