//! The application's R2 store over the kit's S3 server: the settings that reach it (right or
//! deliberately wrong) and a [`Store`] built from them. Import the trait to call its methods
//! on a [`TestS3`]: `use crate::support::r2::R2Access;`.

use portrait_bot::secret::Secret;
use portrait_bot::storage::{R2Settings, Store};
use testkit::s3::{TestS3, ACCESS_KEY, MISSING_BUCKET, PUBLIC_URL, SECRET_KEY};

/// The application's view of a [`TestS3`].
pub trait R2Access {
    /// Settings that work: right credentials, existing bucket.
    fn settings(&self) -> R2Settings;

    /// Settings whose secret key is wrong (the server answers 403 SignatureDoesNotMatch).
    fn settings_with_wrong_secret(&self) -> R2Settings {
        R2Settings {
            secret_access_key: Secret::new("definitely-not-the-secret"),
            ..self.settings()
        }
    }

    /// Settings naming [`MISSING_BUCKET`], which does not exist.
    fn settings_with_missing_bucket(&self) -> R2Settings {
        R2Settings {
            bucket: MISSING_BUCKET.to_owned(),
            ..self.settings()
        }
    }

    /// A [`Store`] over [`R2Access::settings`].
    fn store(&self) -> Store {
        store_with(self.settings())
    }
}

impl R2Access for TestS3 {
    fn settings(&self) -> R2Settings {
        R2Settings {
            endpoint: self.endpoint().to_owned(),
            access_key_id: ACCESS_KEY.to_owned(),
            secret_access_key: Secret::new(SECRET_KEY),
            bucket: self.bucket().to_owned(),
            public_url: PUBLIC_URL.to_owned(),
        }
    }
}

/// A [`Store`] over any settings (e.g. the wrong-secret ones).
pub fn store_with(settings: R2Settings) -> Store {
    Store::r2(settings).expect("valid R2 settings")
}
