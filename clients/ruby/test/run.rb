# frozen_string_literal: true

# Runs every Ruby client test: `ruby clients/ruby/test/run.rb` (from any directory).
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
$LOAD_PATH.unshift(__dir__)
Dir[File.join(__dir__, "test_*.rb")].each { |file| require File.expand_path(file) }
