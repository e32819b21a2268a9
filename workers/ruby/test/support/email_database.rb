# frozen_string_literal: true

require "fileutils"
require "json"
require "open3"
require "tmpdir"
require_relative "../../runtime/errors"
require_relative "email_host"

# The real db host service (simbi_workers/services/db.py) in a Python process, so that the
# SQL of the email workers runs on the real schema: SQLite in a temporary file by default,
# or the database of SIMBI_RUBY_TEST_DATABASE_URL (a throwaway PostgreSQL, say; every
# table in it is dropped). Error replies are shaped as the host shapes them.
class EmailDatabase
  ROOT = File.expand_path("../../../..", __dir__)
  SCRIPT = <<~PYTHON
    import json, sys
    from simbi_workers.errors import JobError
    from simbi_workers.services.db import Database
    from simbi_workers.store.schema import metadata

    db = Database(sys.argv[1])
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["method"] == "reset":
                metadata.drop_all(db.engine)
                metadata.create_all(db.engine)
                reply = {"value": None}
            else:
                method = getattr(db, request["method"])
                reply = {"value": method(request["sql"], request["params"])}
        except JobError as exc:
            reply = {"error": {"class": type(exc).__name__, "message": str(exc),
                               "retryable": exc.retryable}}
        print(json.dumps(reply), flush=True)
  PYTHON

  def self.python
    ENV.fetch("SIMBI_TEST_PYTHON") { File.join(ROOT, ".venv", "bin", "python") }
  end

  # Why the bridge cannot run here, or nil when it can. Asked once per run.
  def self.unavailable_reason
    return @unavailable_reason if defined?(@unavailable_reason)

    @unavailable_reason = File.executable?(python) ? shared.failure : "no Python at #{python}"
  end

  # One process for the whole run; `reset` gives each test empty tables.
  def self.shared
    @shared ||= new.tap { |db| at_exit { db.close } }
  end

  # nil once the bridge said it is ready, else its stderr (an import error, say).
  attr_reader :failure

  def initialize
    @dir = Dir.mktmpdir("simbi-ruby-email-")
    url = ENV.fetch("SIMBI_RUBY_TEST_DATABASE_URL", "sqlite:///#{@dir}/app.db")
    @stdin, @stdout, @stderr, @wait = Open3.popen3(self.class.python, "-c", SCRIPT, url,
                                                   chdir: ROOT)
    return if @stdout.gets&.chomp == "ready"

    @failure = "the db bridge did not start (set SIMBI_TEST_PYTHON to the project's Python): " \
               "#{@stderr.read.lines.last(3).join.strip}"
  end

  def reset
    request("reset", nil, nil)
  end

  def query(sql, params = {})
    request("query", sql, params)
  end

  def execute(sql, params = {})
    request("execute", sql, params)
  end

  # Inserts one row and returns nothing; for seeding.
  def insert(table, row)
    columns = row.keys.join(", ")
    values = row.keys.map { |key| ":#{key}" }.join(", ")
    execute("INSERT INTO #{table} (#{columns}) VALUES (#{values})", row)
  end

  def close
    @stdin.close unless @stdin.closed?
    @wait.value
    @stderr.close
    FileUtils.remove_entry(@dir)
  end

  private

  def request(method_name, sql, params)
    @stdin.puts(JSON.generate({ method: method_name, sql:, params: }))
    @stdin.flush
    line = @stdout.gets or raise "the db bridge exited (#{@wait.value})"
    reply = JSON.parse(line)
    raise SimbiWorker::HostError.from_reply(reply["error"]) if reply["error"]

    reply["value"]
  end
end

# EmailHost whose db calls reach the real db service.
class EmailDatabaseHost < EmailHost
  def initialize(database)
    super()
    on("db", "query") { |p| database.query(p[:sql], p[:params]) }
    on("db", "execute") { |p| database.execute(p[:sql], p[:params]) }
  end
end

# The setup both database-backed email test cases share: the real schema through the db
# bridge, the fixture users inserted, and the child's log captured.
module EmailDatabaseCase
  def setup
    super
    reason = EmailDatabase.unavailable_reason
    flunk("the db bridge cannot run in CI: #{reason}") if reason && ENV["CI"]
    skip(reason) if reason

    @db = EmailDatabase.shared
    @db.reset
    @host = EmailDatabaseHost.new(@db)
    EmailJobs::USERS.each_value { |user| @db.insert("users", user.except("deleted_at")) }
    @stderr_was = $stderr
    $stderr = StringIO.new
  end

  def teardown
    $stderr = @stderr_was if @stderr_was
    super
  end
end
