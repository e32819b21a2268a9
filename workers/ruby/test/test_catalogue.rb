# frozen_string_literal: true

require "minitest/autorun"
require "yaml"
require_relative "../runtime/runner"
Dir[File.join(__dir__, "..", "workers", "*.rb")].each { |file| require file }

# queues.yaml is the single declaration: every Ruby worker it lists must take exactly the
# arguments it names, or the host would accept jobs the child then refuses.
class TestCatalogue < Minitest::Test
  QUEUES = YAML.safe_load_file(File.expand_path("../../../queues.yaml", __dir__))

  def ruby_specs
    QUEUES["workers"].select { |_name, spec| spec["runtime"] == "ruby" }
  end

  def test_every_catalogued_ruby_worker_takes_the_arguments_queues_yaml_names
    ruby_specs.each do |name, spec|
      klass = SimbiWorker::Base.find(name)
      refute_nil klass, "#{name} is in queues.yaml but no Ruby class defines it"
      names = klass.instance_method(:perform).parameters.map { |_kind, arg| arg.to_s }
      assert_equal spec["args"], names, "#{name}: perform's parameters differ from queues.yaml"
    end
  end
end
