using System.Text;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Redaction;

/// <summary>The redaction rules HTTP capture and command logging add to the shared policy.</summary>
public class RedactorCaptureTests
{
    private static Redactor Create(Action<RedactionOptions>? configure = null)
    {
        var options = new RedactionOptions();
        configure?.Invoke(options);
        return new Redactor(options);
    }

    [TestCase("""{"user":"ann","password":"abcdefgh""")]
    [TestCase("""{"user":"ann","password":"abc\"def""")]
    [TestCase("<login><user>ann</user><password>abcdefgh")]
    [TestCase("--B\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nabcdefgh")]
    public void MaskBody_SecretLeftOpenByTheCapture_IsHidden(string start)
    {
        var masked = Create().MaskBody(Encoding.UTF8.GetBytes(start), truncatedAtCapture: true, totalLength: 1_000_000);

        Assert.That(masked, Does.Not.Contain("abc").And.Not.Contain("def").And.Contain("[Filtered]"));
        Assert.That(masked, Does.EndWith("…"));
    }

    [Test]
    public void MaskBody_CompleteSecretInACutBody_OnlyHidesTheSecret()
    {
        var masked = Create().MaskBody(Encoding.UTF8.GetBytes("""{"password":"abc","note":"keep me","other":"x"""), truncatedAtCapture: true, totalLength: 10_000);

        Assert.That(masked, Is.EqualTo("""{"password":"[Filtered]","note":"keep me","other":"x…"""));
    }

    [Test]
    public void MaskText_ConnectionStringAndUrlCredentials_AreHidden()
    {
        var masked = Create().MaskText("db=Host=pg;Username=app;Password=p@ss word;Database=x url=amqp://guest:rabbit-pw@mq:5672/");

        Assert.That(masked, Does.Not.Contain("p@ss").And.Not.Contain("rabbit-pw"));
        Assert.That(masked, Does.Contain("Database=x").And.Contain("amqp://guest:[Filtered]@mq"));
    }

    [Test]
    public void MaskText_FormBody_KeepsTheFieldsAfterASecret()
    {
        Assert.That(Create().MaskText("apikey=k1&x=1&token=t&y=2"), Is.EqualTo("apikey=[Filtered]&x=1&token=[Filtered]&y=2"));
    }

    [Test]
    public void MaskArguments_HidesSecretOptionsValuesAndEmbeddedCredentials()
    {
        var masked = Create().MaskArguments(
        [
            "--password=hunter2", "--api-key", "k-1", "-v", "ConnectionStrings:JobLog=Host=x;Password=pw", "Jobs:ClientSecret=s3",
            "postgres://app:pg-pw@db/x", "two words",
        ]);

        Assert.That(masked, Is.EqualTo(
            "--password=[Filtered] --api-key [Filtered] -v ConnectionStrings:JobLog=Host=x;Password=[Filtered] Jobs:ClientSecret=[Filtered] " +
            "postgres://app:[Filtered]@db/x \"two words\""));
    }

    [TestCase("application/json; charset=utf-8", true)]
    [TestCase("application/problem+json", true)]
    [TestCase("text/html", true)]
    [TestCase("TEXT/CSV", true)]
    [TestCase("application/soap+xml", true)]
    [TestCase("application/octet-stream", false)]
    [TestCase("image/png", false)]
    [TestCase(null, false)]
    [TestCase("garbage", false)]
    public void IsTextContentType_MatchesTheConfiguredTypes(string? contentType, bool expected) =>
        Assert.That(Create().IsTextContentType(contentType), Is.EqualTo(expected));

    [Test]
    public void IsTextContentType_FollowsTheOptions()
    {
        var redactor = Create(o =>
        {
            o.TextContentTypes.Clear();
            o.TextContentTypes.Add("application/vnd.acme+json");
        });

        Assert.That(redactor.IsTextContentType("application/vnd.acme+json"), Is.True);
        Assert.That(redactor.IsTextContentType("application/json"), Is.False);
    }

    [Test]
    public void MaxCaptureBytes_IsNeverBelowTheStoredLength()
    {
        Assert.That(Create(o => o.MaxCapturedBodyBytes = 10).MaxCaptureBytes, Is.EqualTo(10_004));
        Assert.That(Create().MaxCaptureBytes, Is.EqualTo(65_536));
    }
}
