//! The `process` Lambda function: POST /api/v1/process (one image or short video per request)
//! behind a function URL.

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::run_function(ff_lambda::Function::Process).await
}
