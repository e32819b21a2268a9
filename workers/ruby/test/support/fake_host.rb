# frozen_string_literal: true

# Stands in for SimbiWorker::Host in unit tests: records each call and answers from a
# table keyed "service.method". An Exception answer is raised, as the real host client
# raises HostError for an error reply.
class FakeHost
  attr_reader :calls

  def initialize(answers = {})
    @answers = answers
    @calls = []
  end

  def call(service, method_name, params = {})
    @calls << [service, method_name, params]
    answer = @answers.fetch("#{service}.#{method_name}") do
      raise "FakeHost: unexpected call #{service}.#{method_name}"
    end
    raise answer if answer.is_a?(Exception)

    answer
  end
end
