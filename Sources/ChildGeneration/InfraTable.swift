/// The client library a service connected to a piece of infrastructure gets,
/// per language (nil: none needed or none standard).
public enum Client: String, Sendable {
    case postgres, mysql, mongodb, redis, memcached, kafka, amqp, nats, elasticsearch, opensearch, meilisearch
    case typesense, algolia, s3, dynamodb, sqs, pubsub, gcs, azureBlob, sqlite, firebase, supabase

    public func package(for language: Language) -> Package? {
        let table: [Language: Package]
        switch self {
        case .postgres:
            table = [.node: .init("pg", "^8.12.0"), .python: .init("psycopg[binary]", "3.2.1"),
                     .go: .init("github.com/jackc/pgx/v5", "v5.6.0"), .java: .init("org.postgresql:postgresql", "42.7.3"),
                     .ruby: .init("pg", "~> 1.5")]
        case .mysql:
            table = [.node: .init("mysql2", "^3.10.0"), .python: .init("PyMySQL", "1.1.1"),
                     .go: .init("github.com/go-sql-driver/mysql", "v1.8.1"), .java: .init("com.mysql:mysql-connector-j", "8.4.0"),
                     .ruby: .init("mysql2", "~> 0.5")]
        case .mongodb:
            table = [.node: .init("mongodb", "^6.7.0"), .python: .init("pymongo", "4.8.0"),
                     .go: .init("go.mongodb.org/mongo-driver", "v1.16.0"),
                     .java: .init("org.mongodb:mongodb-driver-sync", "5.1.1"), .ruby: .init("mongo", "~> 2.20"),
                     .php: .init("mongodb/mongodb", "^1.19")]
        case .redis:
            table = [.node: .init("redis", "^4.6.14"), .python: .init("redis", "5.0.7"),
                     .go: .init("github.com/redis/go-redis/v9", "v9.5.3"), .java: .init("redis.clients:jedis", "5.1.3"),
                     .ruby: .init("redis", "~> 5.2"), .php: .init("predis/predis", "^2.2")]
        case .memcached:
            table = [.node: .init("memjs", "^1.3.2"), .python: .init("pymemcache", "4.0.0"),
                     .go: .init("github.com/bradfitz/gomemcache", "v0.0.0-20230905024940-24af94b03874"),
                     .ruby: .init("dalli", "~> 3.2")]
        case .kafka:
            table = [.node: .init("kafkajs", "^2.2.4"), .python: .init("confluent-kafka", "2.4.0"),
                     .go: .init("github.com/segmentio/kafka-go", "v0.4.47"),
                     .java: .init("org.apache.kafka:kafka-clients", "3.7.0"), .ruby: .init("rdkafka", "~> 0.16")]
        case .amqp:
            table = [.node: .init("amqplib", "^0.10.4"), .python: .init("pika", "1.3.2"),
                     .go: .init("github.com/rabbitmq/amqp091-go", "v1.10.0"), .java: .init("com.rabbitmq:amqp-client", "5.21.0"),
                     .ruby: .init("bunny", "~> 2.23"), .php: .init("php-amqplib/php-amqplib", "^3.7")]
        case .nats:
            table = [.node: .init("nats", "^2.26.0"), .python: .init("nats-py", "2.8.0"),
                     .go: .init("github.com/nats-io/nats.go", "v1.36.0"), .java: .init("io.nats:jnats", "2.19.1")]
        case .elasticsearch:
            table = [.node: .init("@elastic/elasticsearch", "^8.14.0"), .python: .init("elasticsearch", "8.14.0"),
                     .go: .init("github.com/elastic/go-elasticsearch/v8", "v8.14.0"),
                     .java: .init("co.elastic.clients:elasticsearch-java", "8.14.3"), .ruby: .init("elasticsearch", "~> 8.14"),
                     .php: .init("elasticsearch/elasticsearch", "^8.14")]
        case .opensearch:
            table = [.node: .init("@opensearch-project/opensearch", "^2.10.0"), .python: .init("opensearch-py", "2.6.0"),
                     .go: .init("github.com/opensearch-project/opensearch-go/v4", "v4.1.0"), .ruby: .init("opensearch-ruby", "~> 3.3")]
        case .meilisearch:
            table = [.node: .init("meilisearch", "^0.41.0"), .python: .init("meilisearch", "0.31.4"),
                     .go: .init("github.com/meilisearch/meilisearch-go", "v0.27.0"), .ruby: .init("meilisearch", "~> 0.28"),
                     .php: .init("meilisearch/meilisearch-php", "^1.9")]
        case .typesense:
            table = [.node: .init("typesense", "^1.8.2"), .python: .init("typesense", "0.21.0"), .ruby: .init("typesense", "~> 1.1")]
        case .algolia:
            table = [.node: .init("algoliasearch", "^4.24.0"), .python: .init("algoliasearch", "3.0.0"),
                     .go: .init("github.com/algolia/algoliasearch-client-go/v3", "v3.31.1"), .ruby: .init("algolia", "~> 3.0"),
                     .php: .init("algolia/algoliasearch-client-php", "^3.4")]
        case .s3:
            table = [.node: .init("@aws-sdk/client-s3", "^3.600.0"), .python: .init("boto3", "1.34.130"),
                     .go: .init("github.com/aws/aws-sdk-go-v2/service/s3", "v1.56.1"), .java: .init("software.amazon.awssdk:s3", "2.26.7"),
                     .ruby: .init("aws-sdk-s3", "~> 1.155"), .php: .init("aws/aws-sdk-php", "^3.315")]
        case .dynamodb:
            table = [.node: .init("@aws-sdk/client-dynamodb", "^3.600.0"), .python: .init("boto3", "1.34.130"),
                     .go: .init("github.com/aws/aws-sdk-go-v2/service/dynamodb", "v1.34.0"),
                     .java: .init("software.amazon.awssdk:dynamodb", "2.26.7"), .ruby: .init("aws-sdk-dynamodb", "~> 1.113")]
        case .sqs:
            table = [.node: .init("@aws-sdk/client-sqs", "^3.600.0"), .python: .init("boto3", "1.34.130"),
                     .go: .init("github.com/aws/aws-sdk-go-v2/service/sqs", "v1.34.0"), .java: .init("software.amazon.awssdk:sqs", "2.26.7"),
                     .ruby: .init("aws-sdk-sqs", "~> 1.80")]
        case .pubsub:
            table = [.node: .init("@google-cloud/pubsub", "^4.5.0"), .python: .init("google-cloud-pubsub", "2.21.5"),
                     .go: .init("cloud.google.com/go/pubsub", "v1.40.0"), .java: .init("com.google.cloud:google-cloud-pubsub", "1.130.0"),
                     .ruby: .init("google-cloud-pubsub", "~> 2.18")]
        case .gcs:
            table = [.node: .init("@google-cloud/storage", "^7.11.2"), .python: .init("google-cloud-storage", "2.17.0"),
                     .go: .init("cloud.google.com/go/storage", "v1.43.0"), .java: .init("com.google.cloud:google-cloud-storage", "2.40.1"),
                     .ruby: .init("google-cloud-storage", "~> 1.52")]
        case .azureBlob:
            table = [.node: .init("@azure/storage-blob", "^12.23.0"), .python: .init("azure-storage-blob", "12.20.0"),
                     .go: .init("github.com/Azure/azure-sdk-for-go/sdk/storage/azblob", "v1.3.2"),
                     .java: .init("com.azure:azure-storage-blob", "12.26.1")]
        case .sqlite:
            table = [.node: .init("better-sqlite3", "^11.1.1"), .go: .init("modernc.org/sqlite", "v1.30.1"),
                     .java: .init("org.xerial:sqlite-jdbc", "3.46.0.0"), .ruby: .init("sqlite3", "~> 2.0")]
        case .firebase:
            table = [.node: .init("firebase-admin", "^12.2.0"), .python: .init("firebase-admin", "6.5.0"),
                     .go: .init("firebase.google.com/go/v4", "v4.14.1"), .java: .init("com.google.firebase:firebase-admin", "9.3.0")]
        case .supabase:
            table = [.node: .init("@supabase/supabase-js", "^2.44.0"), .python: .init("supabase", "2.5.1")]
        }
        return table[language]
    }
}

/// The infrastructure definitions behind the catalogue's entries.
enum InfraTable {
    static func postgres(image: String = "postgres:16", standIn: Bool = false) -> Infra {
        Infra(image: image, port: 5432, standIn: standIn,
              environment: [.init("POSTGRES_USER", "postgres"), .init("POSTGRES_PASSWORD", "postgres"), .init("POSTGRES_DB", "app")],
              volume: "/var/lib/postgresql/data", healthcheck: "pg_isready -U postgres -d app",
              connection: [.init("DATABASE_URL", "postgres://postgres:postgres@{host}:5432/app")], client: .postgres)
    }

    static func mysql(standIn: Bool = false) -> Infra {
        Infra(image: "mysql:8.4", port: 3306, standIn: standIn,
              environment: [.init("MYSQL_ROOT_PASSWORD", "mysql"), .init("MYSQL_DATABASE", "app")],
              volume: "/var/lib/mysql", healthcheck: "mysqladmin ping -h 127.0.0.1 -uroot -pmysql",
              connection: [.init("DATABASE_URL", "mysql://root:mysql@{host}:3306/app")], client: .mysql)
    }

    static func redis(_ variable: String = "REDIS_URL") -> Infra {
        Infra(image: "redis:7", port: 6379, command: "redis-server --appendonly yes", volume: "/data",
              healthcheck: "redis-cli ping | grep PONG", connection: [.init(variable, "redis://{host}:6379")], client: .redis)
    }

    static func minio(_ vars: [EnvVar], standIn: Bool) -> Infra {
        Infra(image: "minio/minio:RELEASE.2024-06-13T22-53-53Z", port: 9000, standIn: standIn,
              command: "server /data --console-address :9001",
              environment: [.init("MINIO_ROOT_USER", "minioadmin"), .init("MINIO_ROOT_PASSWORD", "minioadmin")],
              volume: "/data", healthcheck: "mc ready local",
              connection: vars + [.init("S3_ENDPOINT", "http://{host}:9000"), .init("S3_BUCKET", "app"),
                                  .init("AWS_ACCESS_KEY_ID", "minioadmin"), .init("AWS_SECRET_ACCESS_KEY", "minioadmin"),
                                  .init("AWS_REGION", "us-east-1")],
              client: .s3)
    }

    static let mongodb = Infra(image: "mongo:7", port: 27017, volume: "/data/db",
                               healthcheck: "mongosh --quiet --eval \"db.adminCommand('ping').ok\" | grep 1",
                               connection: [.init("MONGODB_URI", "mongodb://{host}:27017/app")], client: .mongodb)
    static let cockroach = Infra(image: "cockroachdb/cockroach:v24.1.1", port: 26257,
                                 command: "start-single-node --insecure", volume: "/cockroach/cockroach-data",
                                 healthcheck: "cockroach sql --insecure -e 'select 1'",
                                 connection: [.init("DATABASE_URL", "postgresql://root@{host}:26257/defaultdb?sslmode=disable")],
                                 client: .postgres)
    static let dynamodb = Infra(image: "amazon/dynamodb-local:2.5.2", port: 8000, standIn: true,
                                command: "-jar DynamoDBLocal.jar -sharedDb -dbPath /home/dynamodblocal/data",
                                volume: "/home/dynamodblocal/data",
                                healthcheck: "curl -s -o /dev/null http://localhost:8000 || exit 1",
                                connection: [.init("DYNAMODB_ENDPOINT", "http://{host}:8000"), .init("AWS_REGION", "us-east-1"),
                                             .init("DYNAMODB_TABLE", "app")], client: .dynamodb)
    static let memcached = Infra(image: "memcached:1.6", port: 11211,
                                 healthcheck: "bash -c 'exec 3<>/dev/tcp/127.0.0.1/11211 && printf \"version\\r\\n\" >&3 && head -c 7 <&3 | grep VERSION'",
                                 connection: [.init("MEMCACHED_SERVERS", "{host}:11211")], client: .memcached)
    static let rabbitmq = Infra(image: "rabbitmq:3-management", port: 5672, volume: "/var/lib/rabbitmq",
                                healthcheck: "rabbitmq-diagnostics -q ping",
                                connection: [.init("AMQP_URL", "amqp://guest:guest@{host}:5672")], client: .amqp)
    static let kafka = Infra(image: "apache/kafka:3.7.0", port: 9092,
                             environment: [
                                .init("KAFKA_NODE_ID", "1"), .init("KAFKA_PROCESS_ROLES", "broker,controller"),
                                .init("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093"),
                                .init("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://{host}:9092"),
                                .init("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
                                .init("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
                                .init("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093"),
                                .init("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"), .init("KAFKA_LOG_DIRS", "/var/lib/kafka/data"),
                             ],
                             volume: "/var/lib/kafka/data",
                             healthcheck: "/opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092 --list",
                             connection: [.init("KAFKA_BROKERS", "{host}:9092")], client: .kafka)
    static let nats = Infra(image: "nats:2.10-alpine", port: 4222, command: "-js -sd /data -m 8222", volume: "/data",
                            healthcheck: "wget -q --spider http://localhost:8222/healthz",
                            connection: [.init("NATS_URL", "nats://{host}:4222")], client: .nats)
    static let sqs = Infra(image: "softwaremill/elasticmq-native:1.6.5", port: 9324, standIn: true,
                           healthcheck: "wget -q -O /dev/null 'http://localhost:9324/?Action=ListQueues' || exit 1",
                           connection: [.init("SQS_ENDPOINT", "http://{host}:9324"),
                                        .init("SQS_QUEUE_URL", "http://{host}:9324/000000000000/app"),
                                        .init("AWS_REGION", "us-east-1")], client: .sqs)
    static let pubsub = Infra(image: "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators", port: 8085, standIn: true,
                              command: "gcloud beta emulators pubsub start --host-port=0.0.0.0:8085 --data-dir=/data",
                              volume: "/data", healthcheck: "curl -sf http://localhost:8085 || exit 1",
                              connection: [.init("PUBSUB_EMULATOR_HOST", "{host}:8085"),
                                           .init("GOOGLE_CLOUD_PROJECT", "local-project")], client: .pubsub)
    static let elasticsearch = Infra(image: "docker.elastic.co/elasticsearch/elasticsearch:8.14.3", port: 9200,
                                     environment: [.init("discovery.type", "single-node"), .init("xpack.security.enabled", "false"),
                                                   .init("ES_JAVA_OPTS", "-Xms512m -Xmx512m")],
                                     volume: "/usr/share/elasticsearch/data",
                                     healthcheck: "curl -sf http://localhost:9200/_cluster/health || exit 1",
                                     connection: [.init("ELASTICSEARCH_URL", "http://{host}:9200")], client: .elasticsearch)
    static let opensearch = Infra(image: "opensearchproject/opensearch:2.15.0", port: 9200,
                                  environment: [.init("discovery.type", "single-node"), .init("DISABLE_SECURITY_PLUGIN", "true"),
                                                .init("OPENSEARCH_JAVA_OPTS", "-Xms512m -Xmx512m")],
                                  volume: "/usr/share/opensearch/data",
                                  healthcheck: "curl -sf http://localhost:9200/_cluster/health || exit 1",
                                  connection: [.init("OPENSEARCH_URL", "http://{host}:9200")], client: .opensearch)
    static let meilisearch = Infra(image: "getmeili/meilisearch:v1.9", port: 7700,
                                   environment: [.init("MEILI_MASTER_KEY", "local-master-key"), .init("MEILI_ENV", "development")],
                                   volume: "/meili_data", healthcheck: "curl -sf http://localhost:7700/health || exit 1",
                                   connection: [.init("MEILISEARCH_URL", "http://{host}:7700"),
                                                .init("MEILISEARCH_API_KEY", "local-master-key")], client: .meilisearch)
    static let typesense = Infra(image: "typesense/typesense:26.0", port: 8108,
                                 command: "--data-dir /data --api-key=local-api-key --enable-cors", volume: "/data",
                                 healthcheck: "curl -sf http://localhost:8108/health || exit 1",
                                 connection: [.init("TYPESENSE_URL", "http://{host}:8108"),
                                              .init("TYPESENSE_API_KEY", "local-api-key")], client: .typesense)
    static let gcs = Infra(image: "fsouza/fake-gcs-server:1.49", port: 4443, standIn: true,
                           command: "-scheme http -port 4443 -data /data", volume: "/data",
                           healthcheck: "wget -q -O /dev/null http://localhost:4443/storage/v1/b || exit 1",
                           connection: [.init("STORAGE_EMULATOR_HOST", "http://{host}:4443"), .init("GCS_BUCKET", "app")],
                           client: .gcs)
    static let azurite = Infra(image: "mcr.microsoft.com/azure-storage/azurite:3.31.0", port: 10000, standIn: true,
                               command: "azurite-blob --blobHost 0.0.0.0 --location /data", volume: "/data",
                               healthcheck: "nc -z 127.0.0.1 10000",
                               connection: [.init("AZURE_STORAGE_CONNECTION_STRING",
                                                  "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://{host}:10000/devstoreaccount1;"),
                                            .init("AZURE_STORAGE_CONTAINER", "app")], client: .azureBlob)

    /// Configuration only: a managed service with no local stand-in.
    static func managed(_ vars: [EnvVar], client: Client?) -> Infra { Infra(image: nil, connection: vars, client: client) }
}
