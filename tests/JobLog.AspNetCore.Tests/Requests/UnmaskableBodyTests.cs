using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>A login whose body cannot be parsed or masked is still in the ledger, with its outcome, and without its secret.</summary>
public class UnmaskableBodyTests
{
    private static readonly string[] s_bodies =
    [
        """{"user":"ann","password":"first-S3CRET","password":"second-S3CRET"}""",
        """{"user":"ann","password":"first-S3CRET","note":"\ud800 lone"}""",
        """{"user":"ann","note":"\ud800","password":"first-S3CRET"}""",
        string.Concat(Enumerable.Repeat("""{"a":""", 300)) + """{"password":"first-S3CRET"}""" + new string('}', 300),
        """{"user":"ann","password":"first-S3CRET""",
    ];

    [TestCaseSource(nameof(s_bodies))]
    public async Task Login_WithABodyTheDomCannotHold_IsRecordedWithItsOutcomeAndWithoutTheSecret(string body)
    {
        await using var web = await WebFixture.StartAsync(app =>
        {
            app.UseJobLogRequests();
            app.MapPost("/login", async (HttpContext context) =>
            {
                using var reader = new StreamReader(context.Request.Body);
                var text = await reader.ReadToEndAsync();
                context.MarkJobLogLogin(succeeded: false);
                return Results.Text("no: " + text.Length, statusCode: 401);
            });
        });

        using var response = await web.Client.PostAsync("/login", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized), "the endpoint ran");
        var log = await web.CompletedInputAsync("/login");
        Assert.That(log.ResponseCode, Is.EqualTo(401));
        Assert.That(log.Type, Is.EqualTo(InputRequestType.UnsuccessfulLogin));
        Assert.That(log.ResponseTimestamp, Is.Not.Null);
        Assert.That(log.RequestBody, Is.Not.Null.And.Not.Empty);
        Assert.That(log.RequestBody, Does.Not.Contain("S3CRET"));
    }
}
