# frozen_string_literal: true

require "minitest/autorun"
require "tmpdir"
require_relative "support/child"

# A worker file that cannot load stops the child before `ready` (docs/protocol.md).
class TestLoadErrors < Minitest::Test
  def start_with(source)
    Dir.mktmpdir do |dir|
      path = File.join(dir, "broken_worker.rb")
      File.write(path, source)
      status, stdout, stderr = Child.new(extra_workers: dir).finish
      [path, status, stdout, stderr]
    end
  end

  def test_a_syntax_error_exits_one_naming_the_file_and_the_error_without_ready
    path, status, stdout, stderr = start_with(<<~RUBY)
      class BrokenWorker < SimbiWorker::Base
        def perform(id
      end
    RUBY

    assert_equal 1, status.exitstatus
    assert_equal "", stdout
    assert_includes stderr, "cannot load worker file #{path}: SyntaxError: "
    assert_match(/#{Regexp.escape(path)}:\d+: syntax error/, stderr)
  end

  def test_an_unknown_constant_exits_one_naming_the_file_and_the_constant
    path, status, stdout, stderr = start_with("class BrokenWorker < NoSuchBase; end\n")

    assert_equal 1, status.exitstatus
    assert_equal "", stdout
    assert_includes stderr,
                    "cannot load worker file #{path}: NameError: uninitialized constant NoSuchBase"
    assert_includes stderr, "from #{path}:1"
  end
end
