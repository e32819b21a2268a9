# frozen_string_literal: true

require "minitest/autorun"
require_relative "../runtime/email"

# The views and the text helpers on their own, without a worker.
class TestEmailViews < Minitest::Test
  V = SimbiWorker::EmailViews
  ADA = { "id" => 7, "first_name" => "Ada", "last_name" => "Lovelace" }.freeze
  HOSTILE = %(<script>alert("x")</script> & 'more')
  ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;more&#39;"

  # Locals for every view, each text value hostile so that escaping shows everywhere.
  LOCALS = {
    recipient: ADA.merge("first_name" => "Ada"), unsubscribe_url: "https://u.test/x?a=1&b=2",
    sender_name: HOSTILE, excerpt: HOSTILE, talk_url: "https://simbi.example/talks/3",
    author_name: HOSTILE, owner: true, service_title: HOSTILE, comment_url: "https://c.test/",
    fan_name: HOSTILE, service_url: "https://s.test/", fan_url: "https://f.test/",
    services: [{ title: HOSTILE, category: "music", price: 3, rating: "rated 4.5 by 2 people",
                 url: "https://s.test/1" }],
    browse_url: "https://simbi.example/services", compliment_url: "https://c.test/",
    requester_name: HOSTILE, favor_url: "https://f.test/",
    new_service_url: "https://simbi.example/services/new",
    profile_url: "https://simbi.example/users/7/edit"
  }.freeze

  def test_there_is_a_text_and_an_html_part_for_every_email
    texts = Dir[File.join(V::DIR, "*.text.erb")].map { |path| File.basename(path, ".text.erb") }
    htmls = Dir[File.join(V::DIR, "*.html.erb")].map { |path| File.basename(path, ".html.erb") }

    assert_equal texts.sort, htmls.sort
    assert_includes texts, "layout"
    assert_equal 9, V.names.size
  end

  def test_every_view_renders_in_both_formats_with_the_greeting_and_unsubscribe_link
    V.names.each do |name|
      text = V.render(name, :text, LOCALS)
      html = V.render(name, :html, LOCALS)

      assert text.start_with?("Hi Ada,\n\n"), "#{name}.text starts with the greeting"
      assert_includes text, "Stop getting these emails: https://u.test/x?a=1&b=2\n", name
      assert_includes html, "<p>Hi Ada,</p>", name
      assert_includes html, %(<a href="https://u.test/x?a=1&amp;b=2"), name
      refute_includes html, "<script>", "#{name}.html lets user text through unescaped"
      refute_includes html, "&amp;lt;", "#{name}.html escapes something twice"
    end
  end

  def test_user_text_is_escaped_once_in_html_and_left_alone_in_text
    html = V.render("notify_message", :html, LOCALS)
    text = V.render("notify_message", :text, LOCALS)

    assert_includes html, "<blockquote style=\"margin: 0 0 16px; padding-left: 12px; " \
                          "border-left: 3px solid #ddd;\">#{ESCAPED}</blockquote>"
    assert_includes text, "\n#{HOSTILE}\n"
    refute_includes text, "&lt;"
  end

  def test_the_layout_keeps_the_rendered_body_as_html
    html = V.render("notify_message", :html, LOCALS)

    assert_includes html, %(<p><a href="https://simbi.example/talks/3">Read it and reply</a></p>)
  end

  def test_raw_marks_html_that_must_not_be_escaped_again
    context = V::Context.new(value: "<b>")

    assert_equal "&lt;b&gt;", V.escape(context.value)
    assert_equal "<b>", V.escape(context.raw("<b>"))
    assert_equal "&lt;b&gt;", V.escape(V.escape("<b>"))
  end

  def test_an_unknown_format_is_refused
    error = assert_raises(ArgumentError) { V.render("notify_message", :pdf, LOCALS) }
    assert_equal "unknown view format :pdf", error.message
  end
end

class TestEmailText < Minitest::Test
  def excerpt(text, limit = 200)
    SimbiWorker::EmailText.excerpt(text, limit)
  end

  def test_a_short_text_comes_back_with_its_whitespace_squeezed
    assert_equal "hello there friend", excerpt("  hello\n\n there \t friend  ")
    assert_equal "", excerpt(nil)
  end

  def test_a_text_of_exactly_the_limit_is_not_cut
    text = "a" * 200

    assert_equal text, excerpt(text)
  end

  def test_a_long_text_is_cut_on_a_word_boundary_with_an_ellipsis_within_the_limit
    text = "#{'word ' * 39}wordy tail" # 195 + 10 characters

    result = excerpt(text)
    assert_equal "#{'word ' * 38}word…", result
    assert_operator result.length, :<=, 200
  end

  def test_a_boundary_right_after_the_cut_keeps_the_last_whole_word
    assert_equal "abc def…", excerpt("abc def ghi", 8)
    assert_equal "abc…", excerpt("abc defghi", 8)
  end

  def test_one_word_longer_than_the_limit_is_cut_inside_the_word
    assert_equal "#{'x' * 9}…", excerpt("x" * 50, 10)
  end

  def test_links_use_simbi_app_url_without_a_trailing_slash_or_the_local_default
    before = ENV.fetch("SIMBI_APP_URL", nil)
    ENV["SIMBI_APP_URL"] = "https://simbi.com/"
    assert_equal "https://simbi.com", SimbiWorker::EmailWorker.app_url
    ENV["SIMBI_APP_URL"] = ""
    assert_equal "http://localhost:3000", SimbiWorker::EmailWorker.app_url
    ENV.delete("SIMBI_APP_URL")
    assert_equal "http://localhost:3000", SimbiWorker::EmailWorker.app_url
  ensure
    ENV["SIMBI_APP_URL"] = before
  end
end
