"""Issue 15 in the template: the role claims reach every function as the settings read them."""

from __future__ import annotations

from typing import Any

from tests.template.test_template import source, transformed

from ecpay_lambda.api.auth import Principal, principal
from ecpay_lambda.config import parse_settings

ROLE_PARAMETERS = {
    "JwtUserClaim": "JWT_USER_CLAIM",
    "JwtGroupsClaim": "JWT_GROUPS_CLAIM",
    "JwtOperatorGroup": "JWT_OPERATOR_GROUP",
    "JwtOperatorScope": "JWT_OPERATOR_SCOPE",
}


def test_role_claims_are_parameters_passed_to_every_function() -> None:
    template = source()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for parameter, variable in ROLE_PARAMETERS.items():
        assert parameter in template["Parameters"]
        assert env[variable] == {"Ref": parameter}
    # The parameters' defaults are the settings' defaults: a stack deployed with none set behaves as
    # the handlers do without the variables.
    defaults = {v: str(template["Parameters"][p].get("Default", "")) for p, v in ROLE_PARAMETERS.items()}
    base = {"ECPAY_CREDENTIALS": "none", "AUTH_MODE": "jwt"}
    deployed, unset = parse_settings({**base, **defaults}), parse_settings(base)
    assert (deployed.jwt_user_claim, deployed.jwt_groups_claim) == (
        unset.jwt_user_claim,
        unset.jwt_groups_claim,
    )
    assert (deployed.jwt_operator_group, deployed.jwt_operator_scope) == (
        unset.jwt_operator_group,
        unset.jwt_operator_scope,
    )


def _authorizer(template: dict[str, Any]) -> dict[str, Any]:
    body = template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]
    schemes = body["components"]["securitySchemes"]
    then, otherwise = schemes["Fn::If"][1:]
    assert schemes["Fn::If"][0] == "UseJwt" and otherwise == {"Ref": "AWS::NoValue"}
    authorizer: dict[str, Any] = then["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    return authorizer


def test_operator_scripts_in_jwt_mode_use_a_client_credentials_token_the_authorizer_accepts() -> None:
    # The HTTP API's JWT authorizer refuses any bearer that is not a JWT of the issuer, so the static
    # token cannot reach a management route in AuthMode=jwt. Scripts get an access token from the same
    # issuer (client credentials, operator scope); Cognito's carries its app client as client_id, which
    # API Gateway matches against the audience: the scripts' client must be in it.
    template = source()
    parameter = template["Parameters"]["JwtScriptAudience"]
    assert parameter["Default"] == ""
    assert template["Conditions"]["HasScriptAudience"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "JwtScriptAudience"}, ""]}]
    }
    jwt = _authorizer(template)
    assert jwt["type"] == "jwt" and jwt["identitySource"] == "$request.header.Authorization"
    assert jwt["jwtConfiguration"]["issuer"] == {"Ref": "JwtIssuer"}
    assert jwt["jwtConfiguration"]["audience"] == {
        "Fn::If": [
            "HasScriptAudience",
            [{"Ref": "JwtAudience"}, {"Ref": "JwtScriptAudience"}],
            [{"Ref": "JwtAudience"}],
        ]
    }
    # Nothing says the static token works in jwt mode.
    secret = template["Resources"]["ApiTokenSecret"]["Properties"]["Description"]
    output = template["Outputs"]["ApiTokenSecretArn"]["Description"]
    for text in (secret, output, parameter["Description"]):
        assert "AuthMode=jwt" in text or "JWT authorizer" in text, text
    assert "refuses" in secret and "refuses" in output


def test_the_scripts_audience_survives_the_sam_transform() -> None:
    apis = [r for r in transformed("jwt")["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert len(apis) == 1
    schemes = apis[0]["Properties"]["Body"]["components"]["securitySchemes"]
    audience = schemes["Fn::If"][1]["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]["jwtConfiguration"]
    assert audience["audience"]["Fn::If"][0] == "HasScriptAudience"


def test_a_client_credentials_token_is_an_operator_by_scope_and_never_an_end_user() -> None:
    # Claims as API Gateway hands a Cognito client-credentials access token to the function.
    claims = {"sub": "3scripts", "client_id": "3scripts", "token_use": "access", "scope": "wallet/operator"}
    settings = parse_settings(
        {"ECPAY_CREDENTIALS": "none", "AUTH_MODE": "jwt", "JWT_OPERATOR_SCOPE": "wallet/operator"}
    )

    def event(values: dict[str, str]) -> dict[str, Any]:
        return {"requestContext": {"authorizer": {"jwt": {"claims": values}}}}

    assert principal(event(claims), settings).operator
    without = principal(event({**claims, "scope": "wallet/read"}), settings)
    assert without == Principal(operator=False)  # no wallet, no identity to open one with
    assert not without.may_reach("3scripts")
    # A person's access token from the web client (its own sub) stays an end user.
    person = principal(event({**claims, "sub": "a1b2-person", "scope": "openid"}), settings)
    assert person == Principal(operator=False, user_id="a1b2-person", identity="a1b2-person")
