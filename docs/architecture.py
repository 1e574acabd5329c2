"""Draw docs/architecture.png, the AWS architecture, from code (the `diagrams` package, Graphviz).

    .venv/bin/python docs/architecture.py        # or: make diagram

One cluster per nested stack, so the picture follows template.yaml: network, streaming, connect,
warehouse, dashboards, alerts. Solid edges carry flu case events; dashed edges are stack-time
custom resources (Lambda) and the scheduled refresh; red dashed edges, new outbreak alerts.
"""

from pathlib import Path

from diagrams import Cluster, Diagram, Edge
from diagrams.aws.analytics import ManagedStreamingForKafka, Quicksight, Redshift
from diagrams.aws.compute import Lambda
from diagrams.aws.general import Users
from diagrams.aws.integration import SNS, EventbridgeScheduler
from diagrams.aws.security import SecretsManager
from diagrams.aws.storage import S3

OUTPUT = Path(__file__).resolve().parent / "architecture"  # .png is appended by diagrams
GRAPH = {"pad": "0.4", "nodesep": "0.55", "ranksep": "0.9", "fontsize": "20", "splines": "spline"}
SETUP = {"style": "dashed", "color": "gray40"}
ALERTS = {"style": "dashed", "color": "firebrick"}


def draw(filename: Path = OUTPUT, outformat: str = "png") -> Path:
    with Diagram(
        "flu-monitor on AWS",
        filename=str(filename),
        outformat=outformat,
        show=False,
        direction="LR",
        graph_attr=GRAPH,
    ):
        vpc = "VPC: 3 AZs, private subnets only, no NAT, S3 gateway endpoint (network stack)"
        with Cluster(vpc):
            with Cluster("events stack (EventSource=simulator, default)"):
                simulator_fn = Lambda("simulator\n(VPC Lambda)")
            with Cluster("connect stack (EventSource=datagen)"):
                connector = ManagedStreamingForKafka("MSK Connect\ndatagen connector")
            with Cluster("streaming stack"):
                msk = ManagedStreamingForKafka("Amazon MSK\ntopic flu_cases\nIAM auth, TLS")
                topic_fn = Lambda("kafka_topic\n(VPC Lambda)")
            with Cluster("warehouse stack"):
                redshift = Redshift("Redshift Serverless\nor provisioned\nstreaming MVs")
            with Cluster("dashboards stack (EnableDashboards)"):
                vpc_connection = Quicksight("QuickSight\nVPC connection")
        dashboard = Quicksight("QuickSight\ndashboard")
        with Cluster("alerts stack (EnableAlerts, default)"):
            notifier_fn = Lambda("alert_notifier")
            alert_topic = SNS("SNS topic\nnew alerts")
        users = Users("public-health staff")

        with Cluster("stack-time custom resources and schedule (outside the VPC)"):
            stager_fn = Lambda("plugin_stager")
            plugin_bucket = S3("plugin bucket")
            bootstrap_fn = Lambda("bootstrap\nlookup")
            sql_fn = Lambda("sql_runner")
            secret = SecretsManager("admin secret")
            scheduler = EventbridgeScheduler("refresh\nevery N min")
            minute = EventbridgeScheduler("every minute")
            publisher_fn = Lambda("quicksight\npublisher")
            released_fn = Lambda("interfaces\nreleased")

        events = {"color": "darkgreen", "penwidth": "2"}
        simulator_fn >> Edge(label="simulated events", **events) >> msk
        connector >> Edge(label="or datagen events", **events) >> msk
        msk >> Edge(label="streaming ingestion", **events) >> redshift
        redshift >> Edge(**events) >> vpc_connection >> Edge(**events) >> dashboard >> users

        stager_fn >> Edge(**SETUP) >> plugin_bucket >> Edge(label="plugin", **SETUP) >> connector
        bootstrap_fn >> Edge(label="brokers", **SETUP) >> msk
        topic_fn >> Edge(label="create topic", **SETUP) >> msk
        secret >> Edge(**SETUP) >> sql_fn >> Edge(label="apply sql/", **SETUP) >> redshift
        scheduler >> Edge(label="REFRESH", **SETUP) >> redshift
        minute >> Edge(label="run", **SETUP) >> simulator_fn
        publisher_fn >> Edge(label="publish quicksight/", **SETUP) >> dashboard
        scheduler >> Edge(label="FINISHED event", **SETUP) >> notifier_fn
        redshift >> Edge(label="new alert episodes\n(Data API)", **ALERTS) >> notifier_fn
        notifier_fn >> Edge(label="once each", **ALERTS) >> alert_topic
        alert_topic >> Edge(label="e-mail", **ALERTS) >> users
        # On delete, each security group waits until its interfaces are released (every group;
        # drawn for the two services that release them after CloudFormation moves on).
        released_fn >> Edge(label="on delete: ENIs gone?", **SETUP) >> [connector, vpc_connection]
    return filename.with_suffix(f".{outformat}")


if __name__ == "__main__":
    print(draw())
