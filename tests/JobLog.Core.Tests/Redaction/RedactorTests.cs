using System.Text;
using System.Text.Json.Nodes;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

public class RedactorTests
{
    private static Redactor Create(Action<RedactionOptions>? configure = null)
    {
        var options = new RedactionOptions();
        configure?.Invoke(options);
        return new Redactor(options);
    }

    [TestCase("Authorization")]
    [TestCase("X-Authorization")]
    [TestCase("x_authorization")]
    [TestCase("Proxy-Authorization")]
    [TestCase("Set-Cookie")]
    [TestCase("Cookie")]
    [TestCase("apiKey")]
    [TestCase("api_key")]
    [TestCase("Api-Key")]
    [TestCase("X-Api-Key")]
    [TestCase("access_token")]
    [TestCase("clientSecret")]
    [TestCase("new_password")]
    public void IsSensitiveName_DefaultNames_AreHidden(string name) =>
        Assert.That(Create().IsSensitiveName(name), Is.True);

    [TestCase("[Filtered]")]
    [TestCase("[body not recorded: 22 bytes]")]
    [TestCase("[body not recorded]")]
    [TestCase("[binary body: 512 bytes]")]
    [TestCase("[binary or unread body: 9 bytes]")]
    [TestCase("[gzip body: 75 bytes]")]
    public void Stored_JobLogsOwnStandInForABody_IsKept_WhenTheApplicationAddsABodyPattern(string standIn)
    {
        // With a body pattern of the application's (docs/http-and-commands.md's own example), every stored body is masked,
        // and these, which begin with '[', were read as JSON: a HideJobLogRequestBody() endpoint's "[Filtered]" was stored
        // as "[ [hidden: the rest is not valid JSON]".
        var redactor = Create(o => o.BodyPatterns.Add(@"card=(\d+)"));

        Assert.That(redactor.Stored(standIn, StoredTextKind.Body), Is.EqualTo(standIn));
    }

    [Test]
    public void Stored_ABodyThatOnlyLooksLikeAStandIn_IsStillMasked()
    {
        var redactor = Create(o => o.BodyPatterns.Add(@"card=(\d+)"));

        Assert.That(redactor.Stored("[body not recorded: card=4111]", StoredTextKind.Body), Does.Not.Contain("4111"));
        Assert.That(redactor.Stored("[Filtered] card=4111", StoredTextKind.Body), Does.Not.Contain("4111"));
    }

    [TestCase("[key-hunter body]")]
    [TestCase("[key-hunter, more body: 12 bytes]")]
    public void Stored_ABodyShapedExactlyAsAStandIn_StillHasTheApplicationsPatternsApplied(string body)
    {
        // The stand-in's shape is no proof that JobLog wrote it: a client can send it as its body.
        var redactor = Create(o => o.BodyPatterns.Add(@"key-([a-z]+)"));

        Assert.That(redactor.Stored(body, StoredTextKind.Body), Does.Not.Contain("hunter"));
    }

    [TestCase("Content-Type")]
    [TestCase("Accept")]
    [TestCase("CustomerId")]
    [TestCase("AuthorizationCode2")]
    public void IsSensitiveName_OrdinaryNames_AreKept(string name) =>
        Assert.That(Create().IsSensitiveName(name), Is.False);

    [Test]
    public void MaskText_JsonWithPasswordAtDepthThree_HidesItAndKeepsTheRest()
    {
        var text = """{"user":{"profile":{"password":"hunter2","name":"ann"}},"items":[{"apiKey":"k"}]}""";

        var masked = Create().MaskText(text);

        Assert.That(masked, Does.Not.Contain("hunter2"));
        Assert.That(masked, Does.Not.Contain("\"k\""));
        Assert.That(masked, Does.Contain("\"name\":\"ann\""));
        Assert.That(masked, Does.Contain("[Filtered]"));
    }

    [Test]
    public void MaskText_FormWithPasswordSpanningLines_HidesAllOfIt()
    {
        var text = "user=ann&password=first-line\nsecond-line\nthird&next=1";

        var masked = Create().MaskText(text);

        Assert.That(masked, Is.EqualTo("user=ann&password=[Filtered]&next=1"));
    }

    [Test]
    public void MaskText_MultipartPassword_HidesTheValue()
    {
        var text = "--BoUnDaRy\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nsecret\nmore\r\n--BoUnDaRy--\r\n";

        var masked = Create().MaskText(text);

        Assert.That(masked, Does.Not.Contain("secret"));
        Assert.That(masked, Does.Not.Contain("more"));
        Assert.That(masked, Does.Contain("--BoUnDaRy--"));
    }

    [Test]
    public void MaskText_XmlPassword_HidesTheValue()
    {
        var masked = Create().MaskText("<login><user>ann</user><Password>s3cr3t</Password></login>");

        Assert.That(masked, Is.EqualTo("<login><user>ann</user><Password>[Filtered]</Password></login>"));
    }

    [Test]
    public void MaskText_CustomPattern_IsApplied()
    {
        var redactor = Create(o => o.BodyPatterns.Add(@"card=(\d+)"));

        Assert.That(redactor.MaskText("card=4111111111111111&x=1"), Is.EqualTo("card=[Filtered]&x=1"));
    }

    [Test]
    public void JsonText_LongJson_ShortensStringsAndStaysWithinTheBound()
    {
        var node = new JsonObject { ["a"] = new string('a', 5000), ["b"] = new string('b', 5000), ["token"] = new string('t', 20_000) };

        var text = Create(o => o.MaxBodyLength = 1000).JsonText(node);

        Assert.That(text.Length, Is.LessThanOrEqualTo(1000));
        Assert.That(text, Does.Not.Contain("ttt"));
        Assert.That(text, Does.Contain("…"));
    }

    [Test]
    public void MaskText_SecretAtTheCutEdge_IsMaskedBeforeTruncation()
    {
        var text = new string('x', 95) + "&password=abcdefghijklmnop";

        var masked = Create(o => o.MaxBodyLength = 110).MaskText(text);

        Assert.That(masked, Does.Not.Contain("abc"));
        Assert.That(masked.Length, Is.LessThanOrEqualTo(110));
    }

    [Test]
    public void MaskBody_BinaryBytes_BecomeAMarkerWithTheLength()
    {
        var bytes = Enumerable.Range(0, 4096).Select(i => (byte)(i % 256)).ToArray();

        var body = Create().MaskBody(bytes, false, bytes.Length);

        Assert.That(body, Is.EqualTo("[binary body: 4096 bytes]"));
    }

    [Test]
    public void MaskBody_InvalidUtf8_BecomesAMarker()
    {
        var bytes = new byte[] { 0x68, 0x69, 0xC3, 0x28, 0xFF, 0xFE };

        Assert.That(Create().MaskBody(bytes, false, bytes.Length), Does.StartWith("[binary body"));
    }

    [Test]
    public void MaskBody_Utf8CutMidCharacter_IsStillText()
    {
        var bytes = Encoding.UTF8.GetBytes("žluťoučký kůň");
        var cut = bytes.AsSpan(0, 3).ToArray(); // 'ž' is two bytes; the third is the first of 'l'... keep a split one:
        var split = Encoding.UTF8.GetBytes("ab\u017E").AsSpan(0, 3).ToArray();

        Assert.That(Create().MaskBody(cut, true, bytes.Length), Does.StartWith("žl"));
        Assert.That(Create().MaskBody(split, true, 4), Does.StartWith("ab"));
    }

    [Test]
    public void TruncateFromLeft_KeepsTheLastWholeLines()
    {
        var text = string.Concat(Enumerable.Repeat("aaaa\n", 20)) + "b";

        Assert.That(Redactor.TruncateFromLeft(text, 90), Is.EqualTo("…\n" + string.Concat(Enumerable.Repeat("aaaa\n", 17)) + "b"));
    }

    [Test]
    public void NameValuesJson_HidesSensitiveHeaders()
    {
        var json = Create().NameValuesJson(
        [
            new("Authorization", ["Bearer abc"]),
            new("Accept", ["text/html"]),
            new("Set-Cookie", ["a=1", "b=2"]),
        ]);

        Assert.That(json, Does.Not.Contain("abc"));
        Assert.That(json, Does.Not.Contain("a=1"));
        Assert.That(json, Does.Contain("text/html"));
    }

    [Test]
    public void MaskText_DuplicatePasswordKeys_HidesEveryCopy()
    {
        var masked = Create().MaskText("""{"user":"ann","password":"one-S3CRET","password":"two-S3CRET"}""");

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.Contain("\"user\":\"ann\""));
    }

    [Test]
    public void MaskText_LoneSurrogateEscape_HidesThatStringAndMasksTheRest()
    {
        var masked = Create().MaskText("""{"note":"\ud800","password":"S3CRET","keep":"yes"}""");

        Assert.That(masked, Does.Not.Contain("S3CRET").And.Not.Contain("ud800"));
        Assert.That(masked, Does.Contain("\"keep\":\"yes\""));
    }

    [Test]
    public void MaskText_JsonTooDeepForTheDom_IsMaskedStructurally()
    {
        var text = string.Concat(Enumerable.Repeat("""{"a":""", 400)) + """{"pass\"word":1,"password":{"x":"S3CRET"}}""" + new string('}', 400);

        var masked = Create().MaskText(text, 100_000);

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.Contain("\"password\":\"[Filtered]\""));
    }

    [Test]
    public void MaskText_JsonCutInsideASensitiveValue_HidesItToTheEnd()
    {
        var masked = Create().MaskText("""{"user":"ann","token":{"value":"S3CRET""", null, cutAtCapture: true);

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.StartWith("""{"user":"ann","token":"""));
    }

    [Test]
    public void MaskText_JsonWithASyntaxErrorAfterASecret_HidesTheRest()
    {
        var masked = Create().MaskText("""{"user":"ann", password: "S3CRET"}""");

        Assert.That(masked, Does.Not.Contain("S3CRET"));
        Assert.That(masked, Does.Contain("ann"));
    }
}
