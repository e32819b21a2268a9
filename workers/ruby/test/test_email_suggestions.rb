# frozen_string_literal: true

require "minitest/autorun"
require "time"
require_relative "../workers/email_suggestions_worker"
require_relative "support/email_jobs"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

# The email and the bookkeeping; the query itself runs on a real database in
# test_email_database.rb.
class TestEmailSuggestedServices < Minitest::Test
  include EmailJobs

  def setup
    super
    @suggestions = [
      { "id" => 21, "title" => "Guitar <basics>", "category" => "music", "price" => 3,
        "rating_average" => 4.75, "rating_count" => 8 },
      { "id" => 22, "title" => "Singing", "category" => "music", "price" => 2,
        "rating_average" => 4.0, "rating_count" => 1 },
      { "id" => 23, "title" => "Drums", "category" => "music", "price" => 4,
        "rating_average" => nil, "rating_count" => 0 }
    ]
    @host.rows(/FROM services s/) { @suggestions }
  end

  def test_emails_the_suggestions_with_rating_price_and_links
    value, skipped = run_worker(SendSuggestedServicesWorker, 7)

    assert_nil skipped
    assert_equal({ "suggested" => [21, 22, 23] }, value)
    mail = mail_to(7)
    assert_equal "Ada, 3 services you might like", mail[:subject]
    assert_includes mail[:text], "* Guitar <basics> (music, 3 Simbi, rated 4.8 by 8 people)\n  " \
                                 "https://simbi.example/services/21\n"
    assert_includes mail[:text], "* Singing (music, 2 Simbi, rated 4.0 by 1 person)\n"
    assert_includes mail[:text], "* Drums (music, 4 Simbi, not rated yet)\n"
    assert_includes mail[:html], %(<a href="https://simbi.example/services/21">) +
                                 "<strong>Guitar &lt;basics&gt;</strong></a>"
    assert_operator mail[:text].index("Guitar"), :<, mail[:text].index("Drums")
    assert_unsubscribe_link(mail, "suggestions")
  end

  def test_asks_for_five_and_for_the_history_of_the_last_30_days
    run_worker(SendSuggestedServicesWorker, 7)

    query = @host.params_of("db", "query").find { |p| p[:sql].include?("FROM services s") }
    params = query[:params]
    assert_equal [7, 5], params.values_at(:user_id, :limit)
    assert_match(/\A\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00\z/, params[:since])
    days = (Time.now.utc - Time.parse(params[:since])) / 86_400
    assert_in_delta 30, days, 0.01
  end

  def test_records_what_it_suggested_in_one_statement_after_sending
    run_worker(SendSuggestedServicesWorker, 7)

    record = @host.executed(/suggestion_history/)
    assert_equal 1, record.size
    assert_equal "INSERT INTO suggestion_history (user_id, service_id) VALUES " \
                 "(:user_id, :service0), (:user_id, :service1), (:user_id, :service2)",
                 record.first[:sql]
    assert_equal({ user_id: 7, service0: 21, service1: 22, service2: 23 }, record.first[:params])
    assert_operator(@host.position { |c| c[1] == "send" }, :<,
                    @host.position { |c| c[2].equal?(record.first) })
  end

  def test_a_failed_send_records_nothing
    @host.on("mail", "send", nil, SimbiWorker::HostError.new(klass: "ProviderUnavailable",
                                                             message: "503", retryable: true))

    assert_raises(SimbiWorker::HostError) { run_worker(SendSuggestedServicesWorker, 7) }
    assert_empty @host.executed(/suggestion_history/)
  end

  def test_one_suggestion_reads_in_the_singular
    @suggestions = @suggestions.first(1)
    run_worker(SendSuggestedServicesWorker, 7)

    assert_equal "Ada, a service you might like", mail_to(7)[:subject]
  end

  def test_nothing_to_suggest_is_a_skip_that_records_nothing
    @suggestions = []

    assert_skipped "nothing to suggest to user 7", SendSuggestedServicesWorker, 7
    assert_empty @host.executed
  end

  def test_an_opt_out_of_suggestions_is_skipped_before_the_query
    opt_out(7, "suggestions")

    assert_skipped "user 7 opted out of suggestions emails", SendSuggestedServicesWorker, 7
    assert(@host.params_of("db", "query").none? { |p| p[:sql].include?("FROM services s") })
  end

  def test_a_deleted_user_is_skipped
    delete_user(7)

    assert_skipped "user 7 is deleted", SendSuggestedServicesWorker, 7
  end
end
# rubocop:enable Metrics/AbcSize
