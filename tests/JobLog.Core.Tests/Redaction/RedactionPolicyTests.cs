using System.Text.Json.Nodes;
using JobLog.Context;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

/// <summary>The one policy over every text: names real APIs use, free text, headers with URLs, arguments, structured logs.</summary>
public class RedactionPolicyTests
{
    private static readonly Redactor s_redactor = new(new RedactionOptions());

    [TestCase("X-Amz-Signature", TestName = "pre-signed S3 URL signature")]
    [TestCase("X-Goog-Signature", TestName = "pre-signed GCS URL signature")]
    [TestCase("sig", TestName = "Azure SAS signature")]
    [TestCase("otp", TestName = "one-time code")]
    [TestCase("totp", TestName = "TOTP code")]
    [TestCase("mfa_code", TestName = "MFA code")]
    [TestCase("code_verifier", TestName = "PKCE verifier")]
    [TestCase("session_id", TestName = "session id")]
    [TestCase("JSESSIONID", TestName = "Java session cookie")]
    [TestCase("PHPSESSID", TestName = "PHP session cookie")]
    [TestCase("sid", TestName = "short session id")]
    [TestCase("jwt", TestName = "JWT")]
    [TestCase("id_token", TestName = "OpenID id token")]
    [TestCase("card_number", TestName = "card number")]
    [TestCase("cardNumber", TestName = "card number, camel case")]
    [TestCase("cvc", TestName = "CVC")]
    [TestCase("cvv2", TestName = "CVV2")]
    [TestCase("pwd", TestName = "pwd")]
    [TestCase("db_pwd", TestName = "pwd inside a name")]
    [TestCase("pass", TestName = "pass")]
    [TestCase("passphrase", TestName = "passphrase")]
    [TestCase("Authentication", TestName = "Authentication header")]
    [TestCase("Cookie2", TestName = "Cookie2 header")]
    [TestCase("X-Session", TestName = "X-Session header")]
    [TestCase("auth", TestName = "auth parameter")]
    [TestCase("pin", TestName = "PIN")]
    [TestCase("ssn", TestName = "social security number")]
    [TestCase("card[pin]", TestName = "nested exact name")]
    [TestCase("Users[0].Pin", TestName = "nested exact name, model binding")]
    [TestCase("session[sid]", TestName = "nested short name")]
    public void IsSensitiveName_NamesRealApisUse_AreHidden(string name) =>
        Assert.That(s_redactor.IsSensitiveName(name), Is.True);

    [TestCase("passenger")]
    [TestCase("compass")]
    [TestCase("signed_at")]
    [TestCase("side")]
    [TestCase("topic")]
    [TestCase("panel")]
    [TestCase("author")]
    [TestCase("code")]
    [TestCase("key")]
    [TestCase("spinner")]
    [TestCase("order[id]")]
    [TestCase("Users[0].Name")]
    [TestCase("pins[]")]
    public void IsSensitiveName_WordsThatOnlyContainAShortName_AreKept(string name) =>
        Assert.That(s_redactor.IsSensitiveName(name), Is.False);

    [TestCase("System.Exception: login failed for ann with password=S3CRET-1 at db", "login failed for ann")]
    [TestCase("Npgsql: Host=db;Username=app;Password=S3CRET-1 x;Database=shop", "Database=shop")]
    [TestCase("connecting to amqp://guest:S3CRET-1@mq:5672/ failed", "@mq:5672/")]
    [TestCase("GET /x\nAuthorization: Bearer S3CRET-1abcdefgh\nAccept: */*", "Accept: */*")]
    [TestCase("refresh with eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTM0NSRVQtMSJ9.c2lnbmF0dXJl please", "please")]
    [TestCase("charged 4111 1111 1111 1111 for order 7", "for order 7")]
    [TestCase("password: S3CRET-1\nuser: ann", "user: ann")]
    [TestCase("<Login><User>ann</User><Password>S3CRET-1</Password></Login>", "<User>ann</User>")]
    [TestCase("callback https://x.example/cb?X-Amz-Signature=S3CRET-1&X-Amz-Date=20260101", "X-Amz-Date=20260101")]
    [TestCase("totp=S3CRET-1, user=ann", "user=ann")]
    [TestCase("GET https://api.example/x?user[password]=S3CRET-1&page=2 failed", "page=2 failed")]
    [TestCase("bound Users[0].Password=S3CRET-1 and Users[0].Name=ann", "Users[0].Name=ann")]
    [TestCase("card[pin]=S3CRET-1&card[last4]=1234", "card[last4]=1234")]
    [TestCase("{\"pwd\": \"S3CRET-1\"} in a log line", "in a log line")]
    [TestCase("-----BEGIN RSA PRIVATE KEY-----\nS3CRET-1\n-----END RSA PRIVATE KEY-----\nafter", "after")]
    public void Stored_FreeTextWithASecret_HidesItAndKeepsTheRest(string text, string kept)
    {
        var stored = s_redactor.Stored(text, StoredTextKind.Free);

        Assert.That(stored, Does.Not.Contain("S3CRET").And.Not.Contain("4111 1111").And.Not.Contain("eyJzdWIi"));
        Assert.That(stored, Does.Contain(kept));
    }

    [Test]
    public void Stored_ANumberThatFailsTheLuhnCheck_IsKept() =>
        Assert.That(s_redactor.Stored("order 4111111111111112 shipped", StoredTextKind.Free), Is.EqualTo("order 4111111111111112 shipped"));

    [Test]
    public void Stored_TextWithoutAnySecretShape_IsTheSameInstance()
    {
        var text = "System.InvalidOperationException: card processor unreachable\n   at Shop.Pay() in /src/Pay.cs:line 42";

        Assert.That(s_redactor.Stored(text, StoredTextKind.Free), Is.SameAs(text));
    }

    [Test]
    public void Stored_AnAlreadyMaskedText_IsUnchanged()
    {
        var once = s_redactor.Stored("--password=[Filtered] a=b;Password=[Filtered]; token: [Filtered] more", StoredTextKind.Free);

        Assert.That(once, Is.EqualTo("--password=[Filtered] a=b;Password=[Filtered]; token: [Filtered] more"));
    }

    [Test]
    public void Stored_JsonStringValuesHoldingConnectionStringsAndUrlCredentials_AreMaskedAndTheJsonStaysValid()
    {
        var json = """{"conn":"Server=db;Password=S3CRET-1\"quoted;Database=x","url":"https://u:S3CRET-2@h/p","n":1}""";

        var stored = s_redactor.Stored(json, StoredTextKind.Json)!;

        Assert.That(stored, Does.Not.Contain("S3CRET"));
        var node = JsonNode.Parse(stored)!;
        Assert.That(node["n"]!.GetValue<int>(), Is.EqualTo(1));
        Assert.That(node["conn"]!.GetValue<string>(), Does.StartWith("Server=db;Password=[Filtered]"));
    }

    [TestCase("Referer", "https://shop.example/pay?X-Amz-Signature=S3CRET-1&X-Amz-Expires=60")]
    [TestCase("Location", "https://blob.example/c/f?sv=2024&sig=S3CRET-1&se=2026")]
    [TestCase("Location", "https://app.example/cb#access_token=S3CRET-1&state=7")]
    [TestCase("Referer", "https://ann:S3CRET-1@app.example/")]
    public void Stored_HeadersWithUrls_HideTheSecretsInTheUrl(string header, string url)
    {
        var json = s_redactor.NameValuesJson([new(header, [url]), new("Accept", ["*/*"])]);

        var stored = s_redactor.Stored(json, StoredTextKind.Json);

        Assert.That(stored, Does.Not.Contain("S3CRET"));
        Assert.That(stored, Does.Contain("*/*"));
    }

    [Test]
    public void MaskText_MultipartWithUnquotedNames_HidesTheValue()
    {
        // MultipartFormDataContent writes the name without quotes when it needs none.
        using var content = new MultipartFormDataContent("b0undary") { { new StringContent("ann"), "user" }, { new StringContent("S3CRET-1"), "password" } };
        var text = content.ReadAsStringAsync().GetAwaiter().GetResult();
        Assert.That(text, Does.Contain("name=password"), "the shape under test");

        var masked = s_redactor.MaskText(text);

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.Contain("ann"));
    }

    [TestCase("Users[0].Password=S3CRET-1&x=1", TestName = "MVC collection binding")]
    [TestCase("user[password]=S3CRET-1&x=1", TestName = "nested name, Rails and PHP style")]
    [TestCase("x=1&order[card][cvc]=S3CRET-1", TestName = "nested twice")]
    [TestCase("p%61ssword=S3CRET-1&x=1", TestName = "percent-encoded name")]
    [TestCase("x=1&%70assword=S3CRET-1", TestName = "percent-encoded first letter")]
    [TestCase("user%5Bpin%5D=S3CRET-1&x=1", TestName = "encoded brackets around an exact name")]
    [TestCase("x=1&pass+word=S3CRET-1", TestName = "a plus in the name")]
    public void MaskText_FormFieldsWithNestedOrEncodedNames_HideTheValue(string form)
    {
        // ASP.NET Core's form reader decodes these names (and MVC binds Users[0].Password); the form pattern read them raw.
        var masked = s_redactor.MaskText(form);

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.Contain("x=1").And.Contain("[Filtered]"));
        Assert.That(s_redactor.Stored(masked, StoredTextKind.Body), Is.EqualTo(masked), "the writer's pass leaves it as it is");
    }

    [Test]
    public void MaskText_FormFieldsWithNestedNamesThatAreNotSensitive_AreKept() =>
        Assert.That(s_redactor.MaskText("Users[0].Name=ann&order%5Bid%5D=7&a+b=c"), Is.EqualTo("Users[0].Name=ann&order%5Bid%5D=7&a+b=c"));

    [Test]
    public void MaskText_PlainKeyValueText_HidesTheValue() =>
        Assert.That(s_redactor.MaskText("user: ann\npassword: S3CRET-1\nmode: test"), Is.EqualTo("user: ann\npassword: [Filtered]\nmode: test"));

    [TestCase(new[] { "--client-secret:S3CRET-1", "--verbose" }, "--verbose", TestName = "option:value")]
    [TestCase(new[] { "--password", "-S3CRET-1", "--verbose" }, "--verbose", TestName = "a value that starts with a dash")]
    [TestCase(new[] { "-p", "S3CRET-1", "--port", "5432" }, "5432", TestName = "-p value")]
    [TestCase(new[] { "login", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJTM0NSRVQtMSJ9.c2ln" }, "login", TestName = "a JWT as a positional argument")]
    [TestCase(new[] { "--db", "Host=h;Password=S3CRET-1;Database=d" }, "Database=d", TestName = "a connection string")]
    [TestCase(new[] { "/p:Password=S3CRET-1" }, "/p:Password=", TestName = "an MSBuild property")]
    [TestCase(new[] { "--url", "https://ann:S3CRET-1@h.example/x?page=2" }, "@h.example/x?page=2", TestName = "URL credentials in a URL with a query")]
    [TestCase(new[] { "https://ann:S3CRET-1@h.example/x?token=S3CRET-2&page=2" }, "&page=2", TestName = "URL credentials and a token, positional")]
    [TestCase(new[] { "mysql", "-u", "root", "-pS3CRET-1", "shop" }, "shop", TestName = "-pvalue attached, as mysql takes it")]
    [TestCase(new[] { "sqlcmd", "-PS3CRET1", "-S", "db" }, "-S db", TestName = "-Pvalue attached")]
    public void MaskArguments_SecretsInEveryShape_AreHidden(string[] args, string kept)
    {
        var masked = s_redactor.MaskArguments(args);

        Assert.That(masked, Does.Not.Contain("S3CRET").And.Not.Contain("eyJzdWIi"));
        Assert.That(masked, Does.Contain(kept));
    }

    [Test]
    public void MaskArguments_ShortOptionsThatAreWords_AreKept() =>
        Assert.That(s_redactor.MaskArguments(["gcc", "-pthread", "-pedantic", "-p", "x"]), Is.EqualTo("gcc -pthread -pedantic -p [Filtered]"));

    [Test]
    public void CapturedLog_StructuredValueNamedPassword_IsWrittenAsTheReplacement()
    {
        var state = new List<KeyValuePair<string, object?>>
        {
            new("User", "ann"), new("Password", "S3CRET-1"), new("Attempt", 3), new("{OriginalFormat}", "Login {User} with {Password} (try {Attempt:D2}) {{literal}}"),
        };

        var text = LogMessageRedaction.Format(state, null, (s, _) => "formatter was used: S3CRET-1", s_redactor);

        Assert.That(text, Is.EqualTo("Login ann with [Filtered] (try 03) {literal}"));
    }

    [Test]
    public void CapturedLog_WithoutSensitiveNames_UsesTheFormatter()
    {
        var state = new List<KeyValuePair<string, object?>> { new("User", "ann"), new("{OriginalFormat}", "Login {User}") };

        Assert.That(LogMessageRedaction.Format(state, null, (_, _) => "Login ann", s_redactor), Is.EqualTo("Login ann"));
    }
}
