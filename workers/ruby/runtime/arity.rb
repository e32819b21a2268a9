# frozen_string_literal: true

module SimbiWorker
  # How many positional JSON arguments a worker's `perform` takes, so that a job with the
  # wrong count fails permanently with a clear message instead of a retryable ArgumentError.
  class Arity
    attr_reader :names

    def initialize(method)
      params = method.parameters
      @required = params.count { |type, _| type == :req }
      @optional = params.count { |type, _| type == :opt }
      @rest = params.any? { |type, _| type == :rest }
      @names = params.filter_map { |type, name| name if %i[req opt].include?(type) }
    end

    def accepts?(count)
      count >= @required && (@rest || count <= @required + @optional)
    end

    # "3", "1 to 2" or "at least 1".
    def to_s
      return "at least #{@required}" if @rest
      return @required.to_s if @optional.zero?

      "#{@required} to #{@required + @optional}"
    end
  end
end
