//! Every environment variable the binary reads, so tests and benchmarks that run it can clear
//! them and the developer's own settings never leak in.

/// The application's variables, documented by `portrait-bot --help`.
pub const CONFIG_VARIABLES: &[&str] = &[
    "DATABASE_URL",
    "APP_ENV",
    "R2_ACCOUNT_ID",
    "R2_ACCESS_KEY_ID",
    "R2_SECRET_ACCESS_KEY",
    "R2_BUCKET_NAME",
    "R2_PUBLIC_URL",
    "R2_ENDPOINT",
    "LOCAL_STORAGE_DIR",
    "LOCAL_PUBLIC_URL",
    "DEFAULT_PORTRAIT_URL",
    "MAX_UPLOAD_BYTES",
    "MAX_IMAGE_DIMENSION",
    "MAX_IMAGE_PIXELS",
    "MAX_DECODE_MEMORY_MIB",
    "CDN_ALLOWED_ORIGINS",
    "HTTP_ADDR",
    "LOG_FORMAT",
    "INGEST_CONCURRENCY",
    "DECODE_CONCURRENCY",
    "FETCH_CONNECT_TIMEOUT_SECS",
    "FETCH_TIMEOUT_SECS",
];

/// The bot's own variables, documented by `portrait-bot run --help`.
pub const BOT_VARIABLES: &[&str] = &[
    "DISCORD_TOKEN",
    "DISCORD_API_BASE",
    "DEV_GUILD_ID",
    "ADMIN_USER_IDS",
    "REGISTRATION_MESSAGE_STEP",
    "REGISTRATION_TIMEOUT_SECS",
    "GALLERY_TIMEOUT_SECS",
    "MAX_CHARACTERS_PER_PLAYER",
    "UPLOADS_PER_10_MINUTES",
    "SHUTDOWN_GRACE_SECS",
    "SHARD_COUNT",
    "SHARD_IDS",
];
