use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    drover_controllers::run(drover_controllers::Cli::parse()).await
}
