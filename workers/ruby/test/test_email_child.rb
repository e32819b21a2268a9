# frozen_string_literal: true

require "minitest/autorun"
require_relative "support/child"
require_relative "support/email_host"

# Each test tells one story and checks every field it cares about (tests are exempt
# from the length metrics in .rubocop.yml for the same reason).
# rubocop:disable Metrics/AbcSize

# An email job through the real child (main.rb) under the C locale the host's clean
# environment may carry: the workers load, the views are found and the UTF-8 of the
# excerpt survives the pipes.
class TestEmailChild < Minitest::Test
  def setup
    @env_before = ENV.values_at("LANG", "LC_ALL", "SIMBI_APP_URL")
    ENV["LANG"] = "C"
    ENV["LC_ALL"] = "C"
    ENV["SIMBI_APP_URL"] = "https://simbi.example"
    @child = Child.new(extra_workers: nil)
    @ready = @child.read_message
  end

  def teardown
    @child.finish
    %w[LANG LC_ALL SIMBI_APP_URL].zip(@env_before).each { |name, value| ENV[name] = value }
  end

  # Answers the child's calls from `host` until `done`; returns [done, calls].
  def converse(host, worker, args)
    message = @child.run_job(worker, args)
    while message["type"] == "call"
      params = JSON.parse(JSON.generate(message["params"]), symbolize_names: true)
      value = host.call(message["service"], message["method"], params)
      @child.send_message({ type: "reply", call_id: message["call_id"], value: })
      message = @child.read_message
    end
    message
  end

  def test_ready_announces_the_seven_email_workers
    names = %w[NotifyCommentEmailWorker NotifyComplimentWorker NotifyFavorWorker
               NotifyMessageWorker SendEngagementFavoritedWorker SendIntroWorker
               SendSuggestedServicesWorker]

    assert_empty names - @ready["workers"]
    refute_includes @ready["workers"], "PushAndEmailWorker"
  end

  def test_a_favorited_job_sends_its_mail_through_the_host
    host = EmailHost.new
    host.rows(/FROM users WHERE id = :id/) do |p|
      { 7 => [{ "id" => 7, "first_name" => "Zoë", "last_name" => "Ng", "email" => "z@example.com",
                "deleted_at" => nil }],
        8 => [{ "id" => 8, "first_name" => "Grace", "last_name" => "Hopper",
                "email" => "g@example.com", "deleted_at" => nil }] }.fetch(p[:params][:id])
    end
    host.rows(/FROM services WHERE id = :id/,
              [{ "id" => 5, "user_id" => 7, "title" => "Café “au lait”" }])

    done = converse(host, "SendEngagementFavoritedWorker", [5, 8])
    assert_equal({ "type" => "done", "job_id" => "job-1",
                   "value" => { "message_id" => "mail-1", "delivered" => "outbox" } }, done)
    mail = host.mails.first
    assert_equal "Grace favorited Café “au lait”", mail[:subject]
    assert_includes mail[:text], "Hi Zoë,\n"
    assert_includes mail[:html], "<strong>Café “au lait”</strong>"
    assert_includes mail[:text], "https://simbi.example/services/5"
  end
end
# rubocop:enable Metrics/AbcSize
