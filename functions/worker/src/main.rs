//! The `worker` Lambda function: S3 ObjectCreated events for `jobs/<id>.json` run that job (once,
//! however often the event arrives).

#[tokio::main]
async fn main() -> Result<(), ff_lambda::Error> {
    ff_lambda::worker::run_worker().await
}
