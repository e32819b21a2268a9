# frozen_string_literal: true

require "json"
require_relative "errors"

module SimbiWorkers
  # The worker catalogue: clients/catalog.json, generated from queues.yaml by
  # `python -m simbi_workers.client_catalog` and checked by tests/test_client_catalog.py.
  # SIMBI_CLIENT_CATALOG (or `catalog_file:`) names another one, such as the tests'.
  class Catalog
    REPO_ROOT = File.expand_path("../../../..", __dir__)
    DEFAULT_FILE = File.join(REPO_ROOT, "clients", "catalog.json")

    Worker = Struct.new(:name, :args, :queue, :timeout, :unique, :secret_positions,
                        keyword_init: true)

    attr_reader :queues_file, :workers, :settings

    def self.load(file = nil)
      file = DEFAULT_FILE if file.nil? || file.empty?
      new(file, JSON.parse(File.read(file, encoding: "UTF-8")))
    rescue SystemCallError, JSON::ParserError => e
      raise ClientSetupError, "#{file}: cannot read the worker catalogue (#{e.message})"
    end

    def initialize(file, raw)
      @queues_file = File.expand_path(raw.fetch("queues_file"), File.dirname(file))
      @settings = raw.fetch("settings")
      @workers = raw.fetch("workers").to_h { |name, spec| [name, worker(name, spec)] }
    end

    private

    def worker(name, spec)
      positions = spec["secret_args"].map { |arg| spec["args"].index(arg) }
      Worker.new(name:, args: spec["args"], queue: spec["queue"], timeout: spec["timeout"],
                 unique: spec["unique"], secret_positions: positions)
    end
  end
end
