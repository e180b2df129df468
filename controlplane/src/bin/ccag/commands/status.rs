//! `ccag status`.

use ccag_proto::admin::v1::GetStatusRequest;

use super::Out;
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};

pub async fn run(ctx: &Ctx, json: bool) -> Result<Out, CliError> {
    let s = ctx.status().get_status(GetStatusRequest {}).await.map_err(|s| ctx.err(s))?.into_inner();
    Ok(render(&s, json).into())
}

fn render(s: &ccag_proto::admin::v1::Status, json: bool) -> String {
    let rec = s.record();
    if json {
        return output::to_json(&rec);
    }
    output::object_with_tables(
        &rec,
        &[
            ("dataplanes", output::render_list(&s.dataplanes, false)),
            ("leases", output::render_list(&s.leases, false)),
            ("failing_destinations", output::render_list(&s.failing_destinations, false)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::admin::v1::{DataPlane, Status};

    fn status() -> Status {
        Status {
            version: "0.1.0".into(),
            database: "sqlite".into(),
            users: 2,
            config_version: 7,
            dataplanes: vec![DataPlane {
                id: "dp-1".into(),
                address: "10.0.0.1:1".into(),
                acked_version: 7,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_nests_data_planes() {
        let v: serde_json::Value = serde_json::from_str(&render(&status(), true)).unwrap();
        assert_eq!(v["database"], "sqlite");
        assert_eq!(v["config_version"], 7);
        assert_eq!(v["dataplanes"][0]["id"], "dp-1");
        assert_eq!(v["dataplanes"][0]["acked_version"], 7);
    }

    #[test]
    fn text_has_a_data_plane_table() {
        let t = render(&status(), false);
        assert!(t.lines().any(|l| l.starts_with("database") && l.contains("sqlite")), "{t}");
        assert!(t.contains("dataplanes:"), "{t}");
        assert!(t.contains("dp-1"), "{t}");
        let none = render(&Status::default(), false);
        assert!(none.contains("No data planes found."), "{none}");
    }
}
