//! The `system` Lambda function: GET /api/v1/system (host, runtime and queue) behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::System).await
}
