/// Spring Boot, Rails and Laravel starters.
extension BackendStarters {
    static func spring(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        let list = names(app).map { "\"\($0)\"" }.joined(separator: ", ")
        return [
            readme(app, run: "mvn spring-boot:run"),
            ("pom.xml", """
            <?xml version="1.0" encoding="UTF-8"?>
            <project xmlns="http://maven.apache.org/POM/4.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                     xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
              <modelVersion>4.0.0</modelVersion>
              <parent>
                <groupId>org.springframework.boot</groupId>
                <artifactId>spring-boot-starter-parent</artifactId>
                <version>3.3.1</version>
              </parent>
              <groupId>com.example</groupId>
              <artifactId>\(app.component.slug)</artifactId>
              <version>0.1.0</version>
              <properties>
                <java.version>21</java.version>
              </properties>
              <dependencies>
                <dependency>
                  <groupId>org.springframework.boot</groupId>
                  <artifactId>spring-boot-starter-web</artifactId>
                </dependency>
            \(Manifests.pomDependencies(app.packages))  </dependencies>
              <build>
                <plugins>
                  <plugin>
                    <groupId>org.springframework.boot</groupId>
                    <artifactId>spring-boot-maven-plugin</artifactId>
                  </plugin>
                </plugins>
              </build>
            </project>

            """),
            ("src/main/java/com/example/app/Application.java", """
            package com.example.app;

            import java.util.List;
            import java.util.Map;
            import org.springframework.boot.SpringApplication;
            import org.springframework.boot.autoconfigure.SpringBootApplication;
            import org.springframework.web.bind.annotation.GetMapping;
            import org.springframework.web.bind.annotation.RestController;

            @SpringBootApplication
            @RestController
            public class Application {
                private static final List<String> CONNECTIONS = List.of(\(list));

                public static void main(String[] args) {
                    SpringApplication.run(Application.class, args);
                }

                @GetMapping("/health")
                public Map<String, Object> health() {
                    return Map.of("status", "ok", "service", "\(app.component.slug)",
                            "configured", CONNECTIONS.stream().filter(n -> System.getenv(n) != null).toList());
                }
            }

            """),
            ("src/main/resources/application.properties", "server.port=${PORT:\(p)}\nspring.application.name=\(app.component.slug)\n"),
            ("Dockerfile", "FROM maven:3.9-eclipse-temurin-21 AS build\nWORKDIR /src\nCOPY . .\nRUN mvn -q package -DskipTests\n\nFROM eclipse-temurin:21-jre\nCOPY --from=build /src/target/*.jar /app.jar\nEXPOSE \(p)\nCMD [\"java\", \"-jar\", \"/app.jar\"]\n"),
        ]
    }

    static func rails(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        let list = names(app).map { "\"\($0)\"" }.joined(separator: ", ")
        return [
            readme(app, run: "bundle install\nbundle exec puma -p \(p) config.ru"),
            ("Gemfile", Manifests.gemfile([Package("rails", "~> 7.1"), Package("puma", "~> 6.4")], extra: app.packages)),
            ("config.ru", "require_relative \"config/environment\"\n\nrun Rails.application\n"),
            ("config/application.rb", """
            require "rails"
            require "action_controller/railtie"

            module App
              class Application < Rails::Application
                config.load_defaults 7.1
                config.api_only = true
                config.eager_load = false
                config.hosts.clear
                config.secret_key_base = ENV.fetch("SECRET_KEY_BASE", "dev-only-change-me")
              end
            end

            """),
            ("config/environment.rb", "require_relative \"application\"\n\nRails.application.initialize!\n"),
            ("config/routes.rb", "Rails.application.routes.draw do\n  get \"/health\", to: \"health#show\"\nend\n"),
            ("app/controllers/health_controller.rb", """
            class HealthController < ActionController::API
              CONNECTIONS = [\(list)].freeze

              def show
                render json: { status: "ok", service: "\(app.component.slug)", configured: CONNECTIONS.select { |n| ENV[n] } }
              end
            end

            """),
            ("Dockerfile", "FROM ruby:3.3-slim\nRUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*\nWORKDIR /app\nCOPY Gemfile .\nRUN bundle install\nCOPY . .\nEXPOSE \(p)\nCMD [\"sh\", \"-c\", \"bundle exec puma -b tcp://0.0.0.0:${PORT:-\(p)} config.ru\"]\n"),
        ]
    }

    static func laravel(_ app: ScaffoldPlan.App) -> Files {
        let p = app.port
        let list = names(app).map { "'\($0)'" }.joined(separator: ", ")
        return [
            readme(app, run: "composer install\nphp artisan serve --port=\(p)"),
            ("composer.json", Manifests.composerJSON(app.component.slug, base: [Package("laravel/framework", "^11.0")], extra: app.packages)),
            ("artisan", "#!/usr/bin/env php\n<?php\n\nuse Symfony\\Component\\Console\\Input\\ArgvInput;\n\ndefine('LARAVEL_START', microtime(true));\n\nrequire __DIR__.'/vendor/autoload.php';\n\n$status = (require_once __DIR__.'/bootstrap/app.php')->handleCommand(new ArgvInput);\n\nexit($status);\n"),
            ("bootstrap/app.php", """
            <?php

            use Illuminate\\Foundation\\Application;

            return Application::configure(basePath: dirname(__DIR__))
                ->withRouting(api: __DIR__.'/../routes/api.php', apiPrefix: '')
                ->create();

            """),
            ("routes/api.php", """
            <?php

            use Illuminate\\Support\\Facades\\Route;

            Route::get('/health', function () {
                $connections = [\(list)];
                return ['status' => 'ok', 'service' => '\(app.component.slug)',
                        'configured' => array_values(array_filter($connections, fn ($n) => env($n)))];
            });

            """),
            // Laravel writes compiled views, caches and sessions here.
            ("storage/framework/cache/.gitignore", "*\n!.gitignore\n"),
            ("storage/framework/sessions/.gitignore", "*\n!.gitignore\n"),
            ("storage/framework/views/.gitignore", "*\n!.gitignore\n"),
            ("storage/logs/.gitignore", "*\n!.gitignore\n"),
            ("bootstrap/cache/.gitignore", "*\n!.gitignore\n"),
            ("public/index.php", "<?php\n\nuse Illuminate\\Http\\Request;\n\nrequire __DIR__.'/../vendor/autoload.php';\n\n(require_once __DIR__.'/../bootstrap/app.php')->handleRequest(Request::capture());\n"),
            ("Dockerfile", "FROM composer:2 AS deps\nWORKDIR /app\nCOPY composer.json .\nRUN composer install --no-dev --no-scripts --ignore-platform-reqs\n\nFROM php:8.3-cli\nWORKDIR /app\nCOPY --from=deps /app/vendor ./vendor\nCOPY . .\nEXPOSE \(p)\nCMD [\"sh\", \"-c\", \"php artisan serve --host=0.0.0.0 --port=${PORT:-\(p)}\"]\n"),
        ]
    }
}
